//! What a company is at the edge: the JSON a client sends, parsed into checked values, and the
//! JSON it reads back.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::leads::LeadsError;
use crate::leads::model::{EMPLOYEE_RANGES, bad, domain, patch, text};

/// The sectors of the North American Industry Classification System (2022): the first two
/// digits of every NAICS code. A code names its company's industry when none is given.
pub const NAICS_SECTORS: [(&str, &str); 24] = [
    ("11", "Agriculture, Forestry, Fishing and Hunting"),
    ("21", "Mining, Quarrying, and Oil and Gas Extraction"),
    ("22", "Utilities"),
    ("23", "Construction"),
    ("31", "Manufacturing"),
    ("32", "Manufacturing"),
    ("33", "Manufacturing"),
    ("42", "Wholesale Trade"),
    ("44", "Retail Trade"),
    ("45", "Retail Trade"),
    ("48", "Transportation and Warehousing"),
    ("49", "Transportation and Warehousing"),
    ("51", "Information"),
    ("52", "Finance and Insurance"),
    ("53", "Real Estate and Rental and Leasing"),
    ("54", "Professional, Scientific, and Technical Services"),
    ("55", "Management of Companies and Enterprises"),
    (
        "56",
        "Administrative and Support and Waste Management and Remediation Services",
    ),
    ("61", "Educational Services"),
    ("62", "Health Care and Social Assistance"),
    ("71", "Arts, Entertainment, and Recreation"),
    ("72", "Accommodation and Food Services"),
    ("81", "Other Services (except Public Administration)"),
    ("92", "Public Administration"),
];

/// The sector title of a NAICS code (2 to 6 digits, starting with a sector's two).
#[must_use]
pub fn naics_sector(code: &str) -> Option<&'static str> {
    if !(2..=6).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NAICS_SECTORS
        .iter()
        .find(|(s, _)| code.starts_with(s))
        .map(|(_, t)| *t)
}

/// A company as a client writes it (create: a name or a domain; update: only the fields present
/// change, `null` clears).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyInput {
    #[serde(default, deserialize_with = "patch")]
    pub name: Option<Option<String>>,
    /// A domain or website URL; stored bare and lower-case (`https://www.Acme.com/` → `acme.com`).
    #[serde(default, deserialize_with = "patch")]
    pub domain: Option<Option<String>>,
    /// A NAICS code, 2 to 6 digits.
    #[serde(default, deserialize_with = "patch")]
    pub naics: Option<Option<String>>,
    /// Free text; the NAICS sector's title when absent and a code is given.
    #[serde(default, deserialize_with = "patch")]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub employee_range: Option<Option<String>>,
    /// US dollars a year.
    #[serde(default, deserialize_with = "patch")]
    pub annual_revenue: Option<Option<i64>>,
    pub technologies: Option<Vec<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub country: Option<Option<String>>,
}

/// A company's checked values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CompanyValues {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub naics: Option<String>,
    pub industry: Option<String>,
    pub employee_range: Option<String>,
    pub annual_revenue: Option<i64>,
    pub technologies: Vec<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
}

impl CompanyValues {
    /// Applies `input` over `self` and checks the result.
    pub fn apply(mut self, input: CompanyInput) -> Result<Self, LeadsError> {
        if let Some(v) = input.name {
            self.name = text("name", v, 300)?;
        }
        if let Some(v) = input.domain {
            self.domain = match text("domain", v, 253)? {
                None => None,
                Some(d) => Some(
                    domain(&d).ok_or_else(|| bad("domain", "a domain name such as example.com"))?,
                ),
            };
        }
        if let Some(v) = input.naics {
            self.naics = match text("naics", v, 6)? {
                None => None,
                Some(c) if naics_sector(&c).is_some() => Some(c),
                Some(_) => {
                    return Err(bad(
                        "naics",
                        "a NAICS code: 2 to 6 digits starting with a sector (e.g. 5112)",
                    ));
                }
            };
        }
        if let Some(v) = input.industry {
            self.industry = text("industry", v, 200)?;
        }
        if self.industry.is_none() {
            self.industry = self
                .naics
                .as_deref()
                .and_then(naics_sector)
                .map(str::to_string);
        }
        if let Some(v) = input.employee_range {
            self.employee_range = match text("employee_range", v, 20)? {
                None => None,
                Some(r) if EMPLOYEE_RANGES.contains(&r.as_str()) => Some(r),
                Some(_) => {
                    return Err(bad(
                        "employee_range",
                        &format!("must be one of {}", EMPLOYEE_RANGES.join(", ")),
                    ));
                }
            };
        }
        if let Some(v) = input.annual_revenue {
            if v.is_some_and(|r| r < 0) {
                return Err(bad("annual_revenue", "US dollars, not negative"));
            }
            self.annual_revenue = v;
        }
        if let Some(list) = input.technologies {
            let mut clean: Vec<String> = Vec::with_capacity(list.len());
            for t in list {
                if let Some(t) = text("technologies", Some(t), 100)?
                    && !clean.iter().any(|c| c.eq_ignore_ascii_case(&t))
                {
                    clean.push(t);
                }
            }
            if clean.len() > 100 {
                return Err(bad("technologies", "at most 100"));
            }
            self.technologies = clean;
        }
        if let Some(v) = input.city {
            self.city = text("city", v, 200)?;
        }
        if let Some(v) = input.region {
            self.region = text("region", v, 200)?;
        }
        if let Some(v) = input.country {
            self.country = text("country", v, 100)?;
        }
        if self.name.is_none() && self.domain.is_none() {
            return Err(bad("name", "a company needs a name or a domain"));
        }
        Ok(self)
    }
}

/// A company as a client reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompanyView {
    pub id: Uuid,
    #[serde(flatten)]
    pub values: CompanyValues,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(v: serde_json::Value) -> Result<CompanyValues, LeadsError> {
        CompanyValues::default().apply(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn a_naics_code_names_the_industry_unless_one_is_given() {
        let c = apply(json!({ "name": "Acme", "naics": "511210" })).unwrap();
        assert_eq!(c.industry.as_deref(), Some("Information"));
        let c =
            apply(json!({ "name": "Acme", "naics": "334", "industry": "Semiconductors" })).unwrap();
        assert_eq!(c.industry.as_deref(), Some("Semiconductors"));
        for bad in ["99", "5", "1234567", "51a"] {
            let e = apply(json!({ "name": "Acme", "naics": bad }))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("naics:"), "{bad}: {e}");
        }
    }

    #[test]
    fn domains_are_normalised_and_a_company_needs_a_name_or_one() {
        let c = apply(json!({ "domain": "https://www.Acme.COM/about", "technologies": ["Rust", "rust", " Go "] }))
            .unwrap();
        assert_eq!(c.domain.as_deref(), Some("acme.com"));
        assert_eq!(c.technologies, ["Rust", "Go"]);
        assert!(apply(json!({ "industry": "Software" })).is_err());
        assert!(apply(json!({ "name": "A", "annual_revenue": -1 })).is_err());
        assert!(apply(json!({ "name": "A", "employee_range": "huge" })).is_err());
    }
}
