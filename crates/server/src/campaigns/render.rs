//! Merge fields: which ones a template may use, their values for a lead, and a template checked
//! and prepared for sending (subject, sanitized HTML, text part written or generated).

use leadgen_mail::template::{self, Escape, Template, TemplateError};

use crate::leads::model::LeadValues;

/// The lead's fields a template may name (`custom.<key>` names a custom field). Company fields
/// are the lead's own copies, kept current by the companies slice.
pub const FIELDS: [&str; 20] = [
    "first_name",
    "last_name",
    "full_name",
    "title",
    "seniority",
    "department",
    "email",
    "phone",
    "linkedin_url",
    "company_name",
    "company_domain",
    "industry",
    "employee_range",
    "city",
    "region",
    "country",
    "source",
    "status",
    "score",
    "tags",
];

fn known(name: &str) -> bool {
    FIELDS.contains(&name)
}

/// What an author wrote, checked: every merge field known, HTML sanitized.
#[derive(Debug, Clone)]
pub struct Checked {
    pub subject: String,
    /// The sanitized HTML part: what is stored is what is sent.
    pub html: Option<String>,
    pub text: String,
    pub text_generated: bool,
}

/// Why a template was refused: the part and the parser's error (field, line, column).
#[derive(Debug, thiserror::Error)]
#[error("{part}: {error}")]
pub struct Refused {
    pub part: &'static str,
    pub error: TemplateError,
}

/// Checks a template as it is saved: subject, HTML and text (generated from the HTML when
/// absent; one of the two is needed).
pub fn check(subject: &str, html: Option<&str>, text: Option<&str>) -> Result<Checked, Refused> {
    let refused = |part| move |error| Refused { part, error };
    template::parse(subject, &known).map_err(refused("subject"))?;
    let html = html
        .filter(|h| !h.trim().is_empty())
        .map(leadgen_mail::html::sanitize);
    if let Some(h) = &html {
        template::parse_html(h, &known).map_err(refused("html"))?;
    }
    let (text, generated) = match (text.filter(|t| !t.trim().is_empty()), &html) {
        (Some(t), _) => (t.to_string(), false),
        (None, Some(h)) => (leadgen_mail::html::to_text(h), true),
        (None, None) => (String::new(), false),
    };
    template::parse(&text, &known).map_err(refused("text"))?;
    Ok(Checked {
        subject: subject.to_string(),
        html,
        text,
        text_generated: generated,
    })
}

/// A stored template, parsed once per batch and rendered once per recipient.
#[derive(Debug, Clone)]
pub struct Prepared {
    subject: Template,
    html: Option<Template>,
    text: Template,
}

/// One recipient's message parts.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub subject: String,
    pub html: Option<String>,
    pub text: String,
}

impl Prepared {
    /// Parses a stored (already checked) template; a template that no longer parses (a field
    /// removed since) is reported, not sent half-rendered.
    pub fn new(subject: &str, html: Option<&str>, text: &str) -> Result<Self, Refused> {
        let refused = |part| move |error| Refused { part, error };
        Ok(Self {
            subject: template::parse(subject, &known).map_err(refused("subject"))?,
            html: html
                .map(|h| template::parse_html(h, &known))
                .transpose()
                .map_err(refused("html"))?,
            text: template::parse(text, &known).map_err(refused("text"))?,
        })
    }

    /// Whether any part names `field` (the phone is decrypted only when used).
    #[must_use]
    pub fn uses(&self, field: &str) -> bool {
        let has = |t: &Template| t.fields().contains(&field);
        has(&self.subject) || has(&self.text) || self.html.as_ref().is_some_and(has)
    }

    #[must_use]
    pub fn render(&self, lead: &LeadValues, score: i16) -> Rendered {
        let value = |name: &str| value_of(lead, score, name);
        Rendered {
            subject: self.subject.render(&value, Escape::Header),
            html: self.html.as_ref().map(|h| h.render(&value, Escape::Html)),
            text: self.text.render(&value, Escape::Text),
        }
    }
}

fn value_of(lead: &LeadValues, score: i16, name: &str) -> Option<String> {
    if let Some(key) = name.strip_prefix("custom.") {
        return lead.custom.get(key).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        });
    }
    let s = |v: &Option<String>| v.clone();
    match name {
        "first_name" => s(&lead.first_name),
        "last_name" => s(&lead.last_name),
        "full_name" => {
            let parts: Vec<&str> = [&lead.first_name, &lead.last_name]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        "title" => s(&lead.title),
        "seniority" => s(&lead.seniority),
        "department" => s(&lead.department),
        "email" => s(&lead.email),
        "phone" => s(&lead.phone),
        "linkedin_url" => s(&lead.linkedin_url),
        "company_name" => s(&lead.company_name),
        "company_domain" => s(&lead.company_domain),
        "industry" => s(&lead.industry),
        "employee_range" => s(&lead.employee_range),
        "city" => s(&lead.city),
        "region" => s(&lead.region),
        "country" => s(&lead.country),
        "source" => s(&lead.source),
        "status" => Some(lead.status.clone()),
        "score" => Some(score.to_string()),
        "tags" => (!lead.tags.is_empty()).then(|| lead.tags.join(", ")),
        _ => None,
    }
}
