//! What an accepted submission does: validates the visitor's values against the form's fields
//! (every problem named, not only the first), then in one tenant transaction of the form's
//! organization finds the lead by the email's blind index and creates, fills or updates it per
//! the form's dedupe mode, records the consent, moves the form's counters; then mails the form's
//! owners.
//!
//! The transaction works as an admin of the organization in the name of the form's creator, as
//! the company push and the rescoring worker do: the form belongs to the organization, and a
//! visitor's address must be matched against every lead of it (the unique address index would
//! refuse a second lead anyway), whatever the ACL of the member who happened to design the form.
//! New leads get the organization's ACL defaults (the column defaults, as leads created through
//! the API get). It writes nothing but the matched or new lead, its consent record and the
//! form's counters.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::FormsState;
use super::model::FieldSpec;
use crate::db::{Aal, Role, TenantContext, TenantTx};
use crate::http::AppError;
use crate::leads::model::{LeadInput, LeadValues};
use crate::leads::search::{Filter, Page, Sort};
use crate::leads::{LeadsError, repo, scoring};
use crate::mail::Mail;

/// A form as the public routes resolved it from its key.
#[derive(Debug, Clone)]
pub struct PublicForm {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub fields: Vec<FieldSpec>,
    pub consent_text: Option<String>,
    pub consent_version: Option<String>,
    pub thank_you: String,
    pub redirect_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub dedupe: String,
    pub accept_without_stamp: bool,
    pub status: String,
    pub owners: Vec<Uuid>,
    pub created_by: Uuid,
}

/// One refused field and why.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// The visitor's checked values, ready to store.
pub struct Accepted {
    /// Only the fields the form asks for, checked, as the leads slice's input.
    input: Map<String, Value>,
    custom: Map<String, Value>,
    consent: bool,
}

fn consent_given(v: Option<&String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "yes" | "on" | "true" | "1"
        )
    })
}

/// Checks `values` against the form: required fields present, each value as the leads slice
/// accepts it, consent ticked when the form asks for it. Every failure, each naming its field.
pub fn validate(
    form: &PublicForm,
    values: &HashMap<String, String>,
) -> Result<Accepted, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut input = Map::new();
    let mut custom = Map::new();
    for f in &form.fields {
        let v = values.get(&f.name).map(|v| v.trim()).unwrap_or("");
        if v.is_empty() {
            if f.required {
                errors.push(FieldError {
                    field: f.name.clone(),
                    reason: "required".into(),
                });
            }
            continue;
        }
        if let Some(key) = f.name.strip_prefix("custom.") {
            if v.chars().count() > 2000
                || v.chars().any(|c| c.is_control() && c != '\n' && c != '\r')
            {
                errors.push(FieldError {
                    field: f.name.clone(),
                    reason: "at most 2000 characters, without control characters".into(),
                });
            } else {
                custom.insert(key.to_string(), Value::String(v.to_string()));
            }
            continue;
        }
        // The leads slice's own checks, one field at a time so that every problem is named; a
        // placeholder name satisfies its "an email or a name" rule, which `email` (always
        // required here) covers for the real lead.
        let filler = if f.name == "last_name" {
            "first_name"
        } else {
            "last_name"
        };
        let probe = serde_json::json!({ filler: "x", f.name.clone(): v });
        let checked = serde_json::from_value::<LeadInput>(probe)
            .map_err(|e| LeadsError::Invalid(e.to_string()))
            .and_then(|i| LeadValues::new_lead().apply(i));
        match checked {
            Ok(_) => {
                input.insert(f.name.clone(), Value::String(v.to_string()));
            }
            Err(e) => {
                let msg = e.to_string();
                let reason = msg
                    .strip_prefix(&format!("{}: ", f.name))
                    .unwrap_or(&msg)
                    .to_string();
                errors.push(FieldError {
                    field: f.name.clone(),
                    reason,
                });
            }
        }
    }
    let consent = consent_given(values.get("consent"));
    if form.consent_text.is_some() && !consent {
        errors.push(FieldError {
            field: "consent".into(),
            reason: "required: tick the box to agree".into(),
        });
    }
    if errors.is_empty() {
        Ok(Accepted {
            input,
            custom,
            consent,
        })
    } else {
        Err(errors)
    }
}

/// Where the submission came from, for the consent record.
pub struct Visitor {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// What was done with an accepted submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created(Uuid),
    Matched(Uuid),
    /// The address was erased at its owner's request: nothing is stored, and the visitor sees
    /// the usual answer (whether an address was erased is not for a form to tell).
    Erased,
}

/// Whether the lead's value of `field` is empty (for `fill_empty`).
fn empty_in(current: &Value, field: &str) -> bool {
    match current.get(field) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

fn input_of(fields: Map<String, Value>) -> Result<LeadInput, AppError> {
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| AppError::BadRequest(format!("form: {e}")))
}

/// Stores an accepted submission in the form's organization; the lead it created or matched.
pub async fn store(
    state: &FormsState,
    form: &PublicForm,
    accepted: Accepted,
    visitor: &Visitor,
    now: OffsetDateTime,
) -> Result<Outcome, AppError> {
    let context = TenantContext {
        org_id: form.org_id,
        user_id: form.created_by,
        role: Role::Admin,
        aal: Aal::Aal1,
    };
    let email = accepted
        .input
        .get("email")
        .and_then(Value::as_str)
        .and_then(leadgen_crypto::field::normalize_email);
    let index = email
        .as_deref()
        .and_then(|e| state.fields.email_index(form.org_id, e));
    // The organization's key before the transaction: creating it takes a connection of its own.
    let sealer = state.fields.sealer(context.org_id).await?;
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    if let Some(idx) = index {
        // Two posts of one address at once: the second waits and then finds the first's lead.
        sqlx::query!(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7300))",
            format!("{}:{}", form.org_id, hex::encode(idx))
        )
        .execute(&mut *tx)
        .await?;
    }
    if let Some(idx) = index {
        let erased = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM app.suppressions
                WHERE org_id = $1 AND email_bidx = $2 AND reason = 'erased') AS "x!""#,
            form.org_id,
            idx.to_vec()
        )
        .fetch_one(&mut *tx)
        .await?;
        if erased {
            tx.commit().await?;
            if let Err(e) = count(&state.pool, form.id, "submission").await {
                tracing::warn!(form = %form.id, error = %e, "a form counter was not updated");
            }
            return Ok(Outcome::Erased);
        }
    }
    let existing = match index {
        Some(idx) => {
            let filter = Filter {
                email_index: Some(Some(idx)),
                include_do_not_contact: true,
                include_do_not_sell: true,
                ..Filter::default()
            };
            let page = Page {
                sort: Sort::NewestFirst,
                limit: 1,
                after: None,
            };
            repo::search(&mut tx, &filter, &page, false)
                .await?
                .into_iter()
                .next()
        }
        None => None,
    };
    let (model, _) = scoring::current(&mut tx).await?;
    let (outcome, lead) = match existing {
        None => {
            let mut fields = accepted.input.clone();
            fields.insert(
                "source".into(),
                Value::String(format!("form:{}", form.name)),
            );
            if !accepted.custom.is_empty() {
                fields.insert("custom".into(), Value::Object(accepted.custom.clone()));
            }
            let values = LeadValues::new_lead().apply(input_of(fields)?)?;
            let id = Uuid::now_v7();
            let score = model.score(&values).0;
            repo::insert(&mut tx, &sealer, id, &values, score, now).await?;
            (Outcome::Created(id), id)
        }
        Some(row) => {
            let current = row.values(&state.fields).await?;
            let shown = serde_json::to_value(&current).map_err(anyhow::Error::from)?;
            let mut fields = Map::new();
            let mut custom = match &row.custom {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            match form.dedupe.as_str() {
                "fill_empty" => {
                    for (k, v) in &accepted.input {
                        if k != "email" && empty_in(&shown, k) {
                            fields.insert(k.clone(), v.clone());
                        }
                    }
                    for (k, v) in &accepted.custom {
                        custom.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                "update_existing" => {
                    for (k, v) in &accepted.input {
                        if k != "email" {
                            fields.insert(k.clone(), v.clone());
                        }
                    }
                    for (k, v) in &accepted.custom {
                        custom.insert(k.clone(), v.clone());
                    }
                }
                // `create_only`: the lead stays as it is; the consent is still recorded.
                _ => {}
            }
            let custom_changed = Value::Object(custom.clone()) != row.custom;
            if !fields.is_empty() || custom_changed {
                if custom_changed {
                    fields.insert("custom".into(), Value::Object(custom));
                }
                let values = current.apply(input_of(fields)?)?;
                let score = model.score(&values).0;
                repo::update(&mut tx, &sealer, row.id, &values, score, now).await?;
            }
            (Outcome::Matched(row.id), row.id)
        }
    };
    if let (true, Some(text), Some(version)) = (
        accepted.consent,
        form.consent_text.as_deref(),
        form.consent_version.as_deref(),
    ) {
        let hash = Sha256::digest(text.as_bytes()).to_vec();
        let ua = visitor.user_agent.as_deref().map(|u| {
            u.chars()
                .filter(|c| !c.is_control())
                .take(512)
                .collect::<String>()
        });
        sqlx::query!(
            "INSERT INTO app.consent_records (id, org_id, lead_id, form_id, consent_version,
                text_sha256, given_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            Uuid::now_v7(),
            form.org_id,
            lead,
            form.id,
            version,
            hash,
            now,
            visitor.ip.map(sqlx::types::ipnetwork::IpNetwork::from),
            ua,
        )
        .execute(&mut *tx)
        .await?;
    }
    let created = matches!(outcome, Outcome::Created(_));
    let to = sqlx::query_scalar!(
        "SELECT u.email FROM app.memberships m JOIN app.users u ON u.id = m.user_id
         WHERE m.org_id = $1 AND m.user_id = ANY($2) ORDER BY u.email",
        form.org_id,
        &form.owners
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    // Counted after the lead is stored, off its transaction (see `count`).
    let kind = if created { "conversion" } else { "submission" };
    if let Err(e) = count(&state.pool, form.id, kind).await {
        tracing::warn!(form = %form.id, error = %e, "a form counter was not updated");
    }
    // The owners' notice goes out after the answer: a slow relay never holds up a visitor.
    let (state, form) = (state.clone(), form.clone());
    tokio::spawn(async move { notify(&state, &form, lead, created, to, now).await });
    Ok(outcome)
}

/// Adds one to a form's counter (`view`, `spam`, `submission` or `conversion`, which is a
/// submission that created a lead). Counters are statistics, not records: every post to a form
/// updates its one row, so the update runs in its own short transaction that does not wait for
/// the disk (`synchronous_commit = off`) and holds the row's lock for microseconds. A crash may
/// forget the last few milliseconds of counts, never a lead or a consent record.
pub async fn count(pool: &sqlx::PgPool, form: Uuid, kind: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("SELECT app.capture_form_count($1, $2)", form, kind)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Mails the form's owners that a submission arrived. The mail names the form and links to the
/// lead; the visitor's values stay in LeadGen, behind the lead's ACL. A failed mail is logged:
/// the lead is stored either way.
async fn notify(
    state: &FormsState,
    form: &PublicForm,
    lead: Uuid,
    created: bool,
    to: Vec<String>,
    now: OffsetDateTime,
) {
    let link = format!("{}/leads/{lead}", state.config.site_url());
    let what = if created {
        "a new lead"
    } else {
        "a lead you already had"
    };
    for addr in to {
        let mail = Mail {
            to: addr,
            subject: format!("New submission of the form \"{}\"", form.name),
            text: format!(
                "Someone submitted the capture form \"{}\"; it is {what}.\n\nOpen it in LeadGen:\n{link}\n",
                form.name
            ),
        };
        if let Err(e) = state.mailer.send(&mail, now).await {
            tracing::warn!(form = %form.id, error = %e, "the form owner's notice was not sent");
        }
    }
}
