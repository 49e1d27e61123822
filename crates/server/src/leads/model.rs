//! What a lead is at the edge: the JSON a client sends, parsed into checked values, and the JSON
//! it gets back. Enumerations are closed sets; free text is trimmed, bounded and free of control
//! characters; the email and phone are normalised before they are encrypted.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::leads::LeadsError;

pub const SENIORITIES: [&str; 11] = [
    "owner", "founder", "c_level", "partner", "vp", "head", "director", "manager", "senior",
    "entry", "intern",
];
pub const STATUSES: [&str; 6] = [
    "new",
    "contacted",
    "qualified",
    "unqualified",
    "customer",
    "lost",
];
pub const EMPLOYEE_RANGES: [&str; 8] = [
    "1-10",
    "11-50",
    "51-200",
    "201-500",
    "501-1000",
    "1001-5000",
    "5001-10000",
    "10001+",
];
pub const SENSITIVITIES: [&str; 4] = ["public", "internal", "confidential", "restricted"];

/// A lead as a client writes it (create: all optional but an email or a name; update: only the
/// fields present change, `null` clears).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    #[serde(default, deserialize_with = "patch")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub seniority: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub linkedin_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub company_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub company_domain: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub employee_range: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub country: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub source: Option<Option<String>>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "patch")]
    pub owner_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub custom: Option<serde_json::Map<String, Value>>,
    pub do_not_contact: Option<bool>,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
pub(crate) fn patch<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A lead's plaintext values after validation: what the repository stores and what a client
/// reads back (inside [`LeadView`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeadValues {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub seniority: Option<String>,
    pub department: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub linkedin_url: Option<String>,
    pub company_name: Option<String>,
    pub company_domain: Option<String>,
    pub industry: Option<String>,
    pub employee_range: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub source: Option<String>,
    pub status: String,
    pub owner_id: Option<Uuid>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub custom: serde_json::Map<String, Value>,
    pub do_not_contact: bool,
    /// The fields whose card numbers [`LeadValues::mask_cards`] masked in this change (never
    /// stored or shown; the repository audits them).
    #[serde(skip)]
    pub masked_fields: Vec<&'static str>,
}

impl LeadValues {
    /// Blanks what identifies and reaches the person (names, email, phone, LinkedIn): what a
    /// restricted lead shows without a justification.
    pub fn hide_contact_details(&mut self) {
        self.first_name = None;
        self.last_name = None;
        self.email = None;
        self.phone = None;
        self.linkedin_url = None;
    }

    /// Masks card numbers typed into the free-text fields and custom values (PCI: no card data
    /// in data tables), keeping the first six and last four digits, and notes which fields
    /// held one. Formatted fields (email, phone, LinkedIn URL, domain) cannot hold one. Returns
    /// how many were masked.
    pub fn mask_cards(&mut self) -> usize {
        use crate::pci::{mask_in_place, mask_json};
        let mut total = 0;
        let mut note = |field: &'static str, n: usize, fields: &mut Vec<&'static str>| {
            if n > 0 && !fields.contains(&field) {
                fields.push(field);
            }
            total += n;
        };
        let mut fields = std::mem::take(&mut self.masked_fields);
        for (name, v) in [
            ("first_name", &mut self.first_name),
            ("last_name", &mut self.last_name),
            ("title", &mut self.title),
            ("department", &mut self.department),
            ("company_name", &mut self.company_name),
            ("industry", &mut self.industry),
            ("city", &mut self.city),
            ("region", &mut self.region),
            ("country", &mut self.country),
            ("source", &mut self.source),
        ] {
            if let Some(text) = v.as_mut() {
                note(name, mask_in_place(text), &mut fields);
            }
        }
        for t in &mut self.tags {
            note("tags", mask_in_place(t), &mut fields);
        }
        let mut custom = Value::Object(std::mem::take(&mut self.custom));
        note("custom", mask_json(&mut custom), &mut fields);
        if let Value::Object(m) = custom {
            self.custom = m;
        }
        self.masked_fields = fields;
        total
    }
}

pub(crate) fn bad(field: &str, reason: &str) -> LeadsError {
    LeadsError::Invalid(format!("{field}: {reason}"))
}

/// Trimmed text of at most `max` characters without control characters; blank is `None`.
pub(crate) fn text(
    field: &str,
    v: Option<String>,
    max: usize,
) -> Result<Option<String>, LeadsError> {
    let Some(v) = v else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(bad(field, &format!("at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(bad(field, "control characters are not allowed"));
    }
    Ok(Some(v.to_string()))
}

fn one_of(field: &str, v: Option<String>, set: &[&str]) -> Result<Option<String>, LeadsError> {
    match text(field, v, 50)? {
        None => Ok(None),
        Some(v) if set.contains(&v.as_str()) => Ok(Some(v)),
        Some(_) => Err(bad(field, &format!("must be one of {}", set.join(", ")))),
    }
}

/// `+` and 8 to 15 digits once spaces, dots, dashes and parentheses are removed.
pub fn e164(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let rest = digits
        .strip_prefix('+')
        .or_else(|| digits.strip_prefix("00"))?;
    (rest.len() >= 8 && rest.len() <= 15 && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("+{rest}"))
}

/// A bare host name: lower-case, no scheme, `www.`, port or path.
pub fn domain(raw: &str) -> Option<String> {
    let s = raw.trim().to_ascii_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let host = s.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    let ok = host.len() <= 253
        && host.contains('.')
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then(|| host.to_string())
}

fn linkedin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    (url.scheme() == "https" && (host == "linkedin.com" || host.ends_with(".linkedin.com")))
        .then(|| url.to_string())
}

impl LeadValues {
    /// Applies `input` over `self` (a new lead starts from the defaults) and checks the result.
    pub fn apply(mut self, input: LeadInput) -> Result<Self, LeadsError> {
        macro_rules! set {
            ($f:ident, $max:expr) => {
                if let Some(v) = input.$f {
                    self.$f = text(stringify!($f), v, $max)?;
                }
            };
        }
        set!(first_name, 200);
        set!(last_name, 200);
        set!(title, 300);
        set!(department, 200);
        set!(company_name, 300);
        set!(industry, 200);
        set!(city, 200);
        set!(region, 200);
        set!(country, 100);
        set!(source, 200);
        if let Some(v) = input.seniority {
            self.seniority = one_of("seniority", v, &SENIORITIES)?;
        }
        if let Some(v) = input.employee_range {
            self.employee_range = one_of("employee_range", v, &EMPLOYEE_RANGES)?;
        }
        if let Some(v) = input.status {
            self.status = one_of("status", Some(v), &STATUSES)?
                .ok_or_else(|| bad("status", "must not be empty"))?;
        }
        if let Some(v) = input.email {
            self.email = match text("email", v, 254)? {
                None => None,
                Some(e) => Some(
                    leadgen_crypto::field::normalize_email(&e)
                        .ok_or_else(|| bad("email", "not an email address"))?,
                ),
            };
        }
        if let Some(v) = input.phone {
            self.phone = match text("phone", v, 40)? {
                None => None,
                Some(p) => Some(e164(&p).ok_or_else(|| {
                    bad(
                        "phone",
                        "an international number: + and 8 to 15 digits, e.g. +14155550100",
                    )
                })?),
            };
        }
        if let Some(v) = input.linkedin_url {
            self.linkedin_url = match text("linkedin_url", v, 500)? {
                None => None,
                Some(u) => Some(
                    linkedin(&u)
                        .ok_or_else(|| bad("linkedin_url", "an https URL on linkedin.com"))?,
                ),
            };
        }
        if let Some(v) = input.company_domain {
            self.company_domain =
                match text("company_domain", v, 253)? {
                    None => None,
                    Some(d) => Some(domain(&d).ok_or_else(|| {
                        bad("company_domain", "a domain name such as example.com")
                    })?),
                };
        }
        if let Some(v) = input.owner_id {
            self.owner_id = v;
        }
        if let Some(tags) = input.tags {
            let mut clean = Vec::with_capacity(tags.len());
            for t in tags {
                if let Some(t) = text("tags", Some(t), 50)?
                    && !clean.contains(&t)
                {
                    clean.push(t);
                }
            }
            if clean.len() > 50 {
                return Err(bad("tags", "at most 50 tags"));
            }
            self.tags = clean;
        }
        if let Some(custom) = input.custom {
            if serde_json::to_vec(&custom).map_or(usize::MAX, |v| v.len()) > 16_384 {
                return Err(bad("custom", "at most 16 KiB of JSON"));
            }
            self.custom = custom;
        }
        if let Some(d) = input.do_not_contact {
            self.do_not_contact = d;
        }
        self.mask_cards();
        if self.email.is_none() && self.first_name.is_none() && self.last_name.is_none() {
            return Err(bad(
                "email",
                "a lead needs an email address or a name (first_name or last_name)",
            ));
        }
        Ok(self)
    }

    #[must_use]
    pub fn new_lead() -> Self {
        Self {
            status: "new".into(),
            ..Self::default()
        }
    }
}

/// A lead as a client reads it.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct LeadView {
    pub id: Uuid,
    /// A restricted lead read without a justification: names, email, phone and LinkedIn are
    /// left out (give `X-LeadGen-Justification` on `GET /api/v1/leads/{id}` to see them).
    pub contact_details_hidden: bool,
    #[serde(flatten)]
    pub values: LeadValues,
    /// The company record its domain links it to (its name, domain, industry and size are
    /// copied here, and follow the company's changes).
    pub company_id: Option<Uuid>,
    pub score: i16,
    pub sensitivity: String,
    pub read_groups: Vec<Uuid>,
    pub write_groups: Vec<Uuid>,
    pub acl_revision: i32,
    /// A California resident (CCPA): derived from region and country at every write, unless
    /// set explicitly (`PUT /api/v1/leads/{id}/ccpa`, which `california_explicit` reports).
    pub california: bool,
    pub california_explicit: bool,
    /// The person opted out of the sale or sharing of their data: exports leave the lead out
    /// unless asked to include it, and campaigns do not send to it.
    pub do_not_sell: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_domains_and_linkedin_urls_are_normalised_or_refused() {
        assert_eq!(e164("+1 (415) 555-0100").as_deref(), Some("+14155550100"));
        assert_eq!(e164("0049 30 1234567").as_deref(), Some("+49301234567"));
        assert_eq!(e164("415 555 0100"), None, "no country code");
        assert_eq!(e164("+12"), None);
        assert_eq!(
            domain("https://www.Example.com:8443/about").as_deref(),
            Some("example.com")
        );
        assert_eq!(domain("not a domain"), None);
        assert_eq!(domain("htp//bad"), None);
        assert!(linkedin("https://www.linkedin.com/in/ann").is_some());
        assert!(linkedin("https://evil.example/linkedin.com").is_none());
        assert!(linkedin("http://linkedin.com/in/ann").is_none());
    }

    #[test]
    fn a_lead_needs_an_email_or_a_name_and_checked_values() {
        let input: LeadInput =
            serde_json::from_value(serde_json::json!({ "title": "CTO" })).unwrap();
        assert!(LeadValues::new_lead().apply(input).is_err());
        let input: LeadInput = serde_json::from_value(serde_json::json!({
            "email": "  Ann.Lee@Example.COM ", "seniority": "vp", "tags": ["a", "a", " b "]
        }))
        .unwrap();
        let v = LeadValues::new_lead().apply(input).unwrap();
        assert_eq!(v.email.as_deref(), Some("ann.lee@example.com"));
        assert_eq!(v.tags, ["a", "b"]);
        let input: LeadInput =
            serde_json::from_value(serde_json::json!({ "first_name": "A", "seniority": "boss" }))
                .unwrap();
        let err = LeadValues::new_lead().apply(input).unwrap_err().to_string();
        assert!(err.contains("seniority"), "{err}");
    }
}
