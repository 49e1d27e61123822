//! Lead scoring: one ideal-customer-profile model per organization, weighted rules over a lead's
//! fields (seniority, industry, company size, country, contact details…). A lead's score is the
//! sum of the points of the rules it meets, clamped to 0–100, and the rules it met are its
//! explanation.
//!
//! Scores are computed here, in one place, wherever a lead is written (the API, imports) and by
//! the rescoring worker after the model changes, so a score never depends on which path wrote
//! it. The model is data (`app.scoring_models.model`), checked when saved with the JSON path of
//! any mistake.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{EMPLOYEE_RANGES, LeadValues, SENIORITIES};
use crate::http::error::AppError;
use crate::http::openapi::{Missing, Refusals};
use crate::leads::LeadsError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// At most this many rules: a model people can still read.
pub const MAX_RULES: usize = 50;

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Seniority,
    Department,
    Industry,
    EmployeeRange,
    Country,
    Region,
    Source,
    Tag,
    HasEmail,
    HasPhone,
    HasLinkedin,
}

impl Factor {
    /// Whether the rule compares the field with `values` (else it tests presence).
    fn takes_values(self) -> bool {
        !matches!(self, Self::HasEmail | Self::HasPhone | Self::HasLinkedin)
    }
}

/// One weighted rule: `points` when the lead's `field` is one of `values` (or, for the `has_*`
/// factors, is present). Points may be negative (students, competitors' domains…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub field: Factor,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    pub points: i16,
}

/// An organization's model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub rules: Vec<Rule>,
}

/// One rule a lead met, with its points: the explanation of a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contribution {
    pub rule: String,
    pub field: Factor,
    pub points: i16,
}

fn bad(path: &str, reason: &str) -> LeadsError {
    LeadsError::Invalid(format!("{path}: {reason}"))
}

impl Model {
    /// Parses and checks a model sent by a client; errors name the JSON path.
    ///
    /// # Errors
    /// The first problem, naming its JSON path (`rules[2].values[0]: not a seniority …`).
    pub fn parse(v: Value) -> Result<Model, LeadsError> {
        let model: Model = crate::http::wire::from_value(v)?;
        model.check()?;
        Ok(model)
    }

    fn check(&self) -> Result<(), LeadsError> {
        if self.rules.len() > MAX_RULES {
            return Err(bad("rules", &format!("at most {MAX_RULES} rules")));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            let name = r.name.trim();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(bad(
                    &format!("{at}.name"),
                    "1 to 100 characters, no control characters",
                ));
            }
            if !names.insert(name.to_lowercase()) {
                return Err(bad(&format!("{at}.name"), "another rule has this name"));
            }
            if !(-100..=100).contains(&r.points) || r.points == 0 {
                return Err(bad(&format!("{at}.points"), "from -100 to 100, and not 0"));
            }
            if !r.field.takes_values() {
                if !r.values.is_empty() {
                    return Err(bad(
                        &format!("{at}.values"),
                        "has_email, has_phone and has_linkedin take no values",
                    ));
                }
                continue;
            }
            if r.values.is_empty() || r.values.len() > 100 {
                return Err(bad(&format!("{at}.values"), "1 to 100 values"));
            }
            for (j, v) in r.values.iter().enumerate() {
                let vat = format!("{at}.values[{j}]");
                let ok = match r.field {
                    Factor::Seniority => SENIORITIES.contains(&v.as_str()),
                    Factor::EmployeeRange => EMPLOYEE_RANGES.contains(&v.as_str()),
                    Factor::Country => v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase()),
                    _ => {
                        !v.trim().is_empty()
                            && v.chars().count() <= 200
                            && !v.chars().any(char::is_control)
                    }
                };
                if !ok {
                    let reason = match r.field {
                        Factor::Seniority => {
                            format!("not a seniority ({})", SENIORITIES.join(", "))
                        }
                        Factor::EmployeeRange => {
                            format!("not an employee range ({})", EMPLOYEE_RANGES.join(", "))
                        }
                        Factor::Country => "an ISO 3166 alpha-2 code in capitals (DE, US)".into(),
                        _ => "1 to 200 characters, no control characters".into(),
                    };
                    return Err(bad(&vat, &reason));
                }
            }
        }
        Ok(())
    }

    /// The score of `lead` (0–100) and the rules that made it.
    #[must_use]
    pub fn score(&self, lead: &LeadValues) -> (i16, Vec<Contribution>) {
        let mut total: i32 = 0;
        let mut why = Vec::new();
        for r in &self.rules {
            if matches(r, lead) {
                total += i32::from(r.points);
                why.push(Contribution {
                    rule: r.name.clone(),
                    field: r.field,
                    points: r.points,
                });
            }
        }
        (i16::try_from(total.clamp(0, 100)).unwrap_or(0), why)
    }
}

fn one_of(values: &[String], v: Option<&str>) -> bool {
    v.is_some_and(|v| {
        values
            .iter()
            .any(|x| x.trim().eq_ignore_ascii_case(v.trim()))
    })
}

fn matches(r: &Rule, lead: &LeadValues) -> bool {
    let v = &r.values;
    match r.field {
        Factor::Seniority => lead
            .seniority
            .as_deref()
            .is_some_and(|s| v.iter().any(|x| x == s)),
        Factor::EmployeeRange => lead
            .employee_range
            .as_deref()
            .is_some_and(|s| v.iter().any(|x| x == s)),
        Factor::Country => lead
            .country
            .as_deref()
            .is_some_and(|c| v.iter().any(|x| x.eq_ignore_ascii_case(c))),
        Factor::Department => one_of(v, lead.department.as_deref()),
        Factor::Industry => one_of(v, lead.industry.as_deref()),
        Factor::Region => one_of(v, lead.region.as_deref()),
        Factor::Source => one_of(v, lead.source.as_deref()),
        Factor::Tag => lead.tags.iter().any(|t| one_of(v, Some(t))),
        Factor::HasEmail => lead.email.is_some(),
        Factor::HasPhone => lead.phone.is_some(),
        Factor::HasLinkedin => lead.linkedin_url.is_some(),
    }
}

/// The model of the transaction's organization (an empty one, scoring everyone 0, when none was
/// saved).
///
/// # Errors
/// A database error.
pub async fn current(tx: &mut crate::db::TenantTx) -> Result<(Model, i32), LeadsError> {
    let org = tx.context().org_id;
    let row = sqlx::query!(
        "SELECT model, version FROM app.scoring_models WHERE org_id = $1",
        org
    )
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        // A stored model was checked when saved; one that no longer parses (a field removed in
        // a later release) scores as the empty model rather than failing every write.
        Some(r) => Ok((
            serde_json::from_value(r.model).unwrap_or_default(),
            r.version,
        )),
        None => Ok((Model::default(), 0)),
    }
}

// ---- API ----------------------------------------------------------------------------------

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Entry, Meta};
use crate::db::{Aal, Role, TenantContext, TenantTx};
use crate::http::error::ApiJson;
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(read, save))
        .routes(routes!(explain))
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// The model, its version and how far rescoring has got: what `GET /api/v1/scoring` answers and
/// the page shows.
#[derive(Serialize)]
struct ScoringState {
    model: Model,
    version: i32,
    rescoring: Rescoring,
    updated_at: Option<String>,
}

#[derive(Serialize)]
struct Rescoring {
    done: bool,
    rescored_rows: i64,
}

async fn load_state(tx: &mut TenantTx) -> Result<ScoringState, LeadsError> {
    let org = tx.context().org_id;
    let row = sqlx::query!(
        "SELECT model, version, rescored_version, rescored_rows, updated_at
         FROM app.scoring_models WHERE org_id = $1",
        org
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => ScoringState {
            model: serde_json::from_value(r.model).unwrap_or_default(),
            version: r.version,
            rescoring: Rescoring {
                done: r.rescored_version == r.version,
                rescored_rows: r.rescored_rows,
            },
            updated_at: Some(crate::http::ts(r.updated_at)),
        },
        None => ScoringState {
            model: Model::default(),
            version: 0,
            rescoring: Rescoring {
                done: true,
                rescored_rows: 0,
            },
            updated_at: None,
        },
    })
}

/// `GET /api/v1/scoring`: the model, its version and how far rescoring has got.
#[utoipa::path(get, path = "/api/v1/scoring", tag = "scoring",
    responses((status = 200, description = "The organization's model, its version and the bulk rescoring progress", body = Object), Refusals))]
async fn read(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let body = load_state(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(body).into_response())
}

/// `PUT /api/v1/scoring`: replaces the model (admins and managers). Every lead is then rescored
/// in the background; new and changed leads are scored with the new model at once.
#[utoipa::path(put, path = "/api/v1/scoring", tag = "scoring", request_body(content = Model, description = "Weighted rules; a mistake is answered with its JSON path"),
    responses((status = 200, description = "The saved model's state; leads are rescored in the background (admins and managers)", body = Object), Refusals))]
async fn save(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let model = Model::parse(body)?;
    let body = save_model(&state, &member, &meta, &model).await?;
    Ok(axum::Json(body).into_response())
}

/// Saves `model` as the organization's (admins and managers only), audited; returns the state
/// `GET /api/v1/scoring` shows.
///
/// # Errors
/// Denied for other roles; database errors.
async fn save_model(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    model: &Model,
) -> Result<ScoringState, LeadsError> {
    if !matches!(member.role, Role::Admin | Role::Manager) {
        return Err(LeadsError::Denied {
            code: "forbidden",
            message: "only admins and managers change the scoring model".into(),
        });
    }
    // Security Policy: MFA is mandatory for lead scoring changes, whatever the role.
    if member.aal != Aal::Aal2 {
        return Err(LeadsError::Denied {
            code: "insufficient_aal",
            message: "changing the scoring model needs a session verified with a second factor \
                      (aal2): set up an authenticator app and sign in with it"
                .into(),
        });
    }
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let org = tx.context().org_id;
    let stored = serde_json::to_value(model).map_err(|e| LeadsError::Internal(e.into()))?;
    let version = sqlx::query_scalar!(
        "INSERT INTO app.scoring_models (org_id, model, version, updated_by, updated_at)
         VALUES ($1, $2, 1, $3, $4)
         ON CONFLICT (org_id) DO UPDATE
            SET model = EXCLUDED.model, version = app.scoring_models.version + 1,
                rescore_after = NULL, rescored_rows = 0, rescore_lease = NULL,
                updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
         RETURNING version",
        org,
        stored,
        member.principal_id,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "scoring.update",
            target: Some("scoring_model".into()),
            before: None,
            after: Some(json!({ "version": version, "rules": model.rules.len() })),
        },
    )
    .await?;
    let body = load_state(&mut tx).await?;
    tx.commit().await?;
    Ok(body)
}

/// `GET /api/v1/leads/{id}/score`: the lead's score under the current model and the rules that
/// made it.
#[utoipa::path(get, path = "/api/v1/leads/{id}/score", tag = "scoring", params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 200, description = "The lead's score and the factors that make it up", body = Object), Missing, Refusals))]
async fn explain(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = super::repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    let (model, version) = current(&mut tx).await?;
    tx.commit().await?;
    let values = row.values(&state.fields).await?;
    let (score, contributions) = model.score(&values);
    Ok(axum::Json(json!({
        "score": score,
        "stored_score": row.score,
        "model_version": version,
        "contributions": contributions,
    }))
    .into_response())
}

// ---- Page ---------------------------------------------------------------------------------

use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Redirect;

use crate::auth::BrowserUser;
use crate::http::error::ApiQuery;
use crate::web::CsrfForm;
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{SignedIn, csrf, render};

pub fn page_routes() -> Router<LeadsState> {
    Router::new().route("/leads/scoring", get(page).post(page_save))
}

struct RuleLine {
    name: String,
    field: String,
    values: String,
    points: i16,
}

#[derive(Template)]
#[template(path = "scoring.html")]
struct ScoringPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    rules: Vec<RuleLine>,
    model_version: i64,
    done: bool,
    rescored_rows: i64,
    can_edit: bool,
    /// The session is at `aal2`, which saving needs.
    verified: bool,
    draft: String,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    done: Option<String>,
}

#[derive(serde::Deserialize)]
struct PageForm {
    model: String,
}

async fn page(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, AppError> {
    let notice = q
        .done
        .map(|_| "Model saved; every lead is being rescored.".to_string());
    render_page(&state, &headers, &who, None, notice, None).await
}

async fn page_save(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<PageForm>,
) -> Result<Response, AppError> {
    let result = async {
        let member = crate::orgs::Member::from_user(&who)?;
        crate::orgs::permissions::check(&member, crate::orgs::Permission::LeadSearchAndManagement)?;
        let value: Value = serde_json::from_str(&form.model)
            .map_err(|e| AppError::BadRequest(format!("not JSON: {e}")))?;
        let model = Model::parse(value)?;
        Ok::<_, AppError>(save_model(&state, &member, &meta, &model).await?)
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to("/leads/scoring?done=saved").into_response()),
        Err(e) => {
            let status = e.status();
            let mut res = render_page(
                &state,
                &headers,
                &who,
                Some(form.model),
                None,
                Some(e.public_message()),
            )
            .await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

async fn render_page(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    draft: Option<String>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Scoring, &token.token).await?;
    let member = crate::orgs::Member::from_user(who)?;
    crate::orgs::permissions::check(&member, crate::orgs::Permission::LeadSearchAndManagement)?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let current = load_state(&mut tx).await?;
    tx.commit().await?;
    let rules = current
        .model
        .rules
        .iter()
        .map(|r| RuleLine {
            name: r.name.clone(),
            field: serde_json::to_value(r.field)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            values: r.values.join(", "),
            points: r.points,
        })
        .collect();
    let page = ScoringPage {
        assets: assets::get(),
        version: state.version,
        shell,
        csrf: token.token.clone(),
        rules,
        model_version: i64::from(current.version),
        done: current.rescoring.done,
        rescored_rows: current.rescoring.rescored_rows,
        can_edit: matches!(member.role, Role::Admin | Role::Manager),
        verified: member.aal == Aal::Aal2,
        draft: draft.unwrap_or_else(|| {
            serde_json::to_string_pretty(&current.model)
                .unwrap_or_else(|_| "{\"rules\": []}".into())
        }),
        notice,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

// ---- Rescoring worker ----------------------------------------------------------------------

/// Leads rescored per transaction.
const BATCH: i64 = 2000;

/// What scoring reads of a stored lead: its plain fields, and whether it has the encrypted ones.
pub(crate) struct Stored {
    pub id: Uuid,
    pub seniority: Option<String>,
    pub department: Option<String>,
    pub industry: Option<String>,
    pub employee_range: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub has_email: bool,
    pub has_phone: bool,
    pub has_linkedin: bool,
    pub score: i16,
}

impl Stored {
    pub(crate) fn values(&self) -> LeadValues {
        LeadValues {
            seniority: self.seniority.clone(),
            department: self.department.clone(),
            industry: self.industry.clone(),
            employee_range: self.employee_range.clone(),
            country: self.country.clone(),
            region: self.region.clone(),
            source: self.source.clone(),
            tags: self.tags.clone(),
            // Presence is all a rule asks of these; the values stay encrypted.
            email: self.has_email.then(String::new),
            phone: self.has_phone.then(String::new),
            linkedin_url: self.has_linkedin.then(String::new),
            ..LeadValues::default()
        }
    }
}

/// Rescores organizations whose model changed, one batch per transaction, until the task is
/// dropped (at shutdown). Each batch also moves the checkpoint, so a crash resumes after the last
/// committed batch; a model saved meanwhile restarts the walk with the new version.
pub async fn run(state: LeadsState) {
    loop {
        let claimed = sqlx::query!(
            r#"SELECT org_id AS "org_id!", version AS "version!", rescore_after, actor AS "actor!"
               FROM app.rescore_claim($1, 60)"#,
            state.clock.now()
        )
        .fetch_optional(&state.pool)
        .await;
        match claimed {
            Ok(Some(job)) => {
                let context = TenantContext {
                    org_id: job.org_id,
                    user_id: job.actor,
                    // Scores are organization-wide: the job sees every lead, whatever the ACL
                    // of whoever saved the model, and writes nothing but `score`.
                    role: Role::Admin,
                    aal: Aal::Aal1,
                };
                if let Err(e) = rescore(&state, &context, job.version, job.rescore_after).await {
                    tracing::warn!(org = %job.org_id, error = %e, "rescoring stopped; it resumes from its checkpoint");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
            }
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            Err(e) => {
                tracing::warn!(error = %e, "looking for rescoring work");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
}

async fn rescore(
    state: &LeadsState,
    context: &TenantContext,
    version: i32,
    mut after: Option<Uuid>,
) -> Result<(), LeadsError> {
    let org = context.org_id;
    loop {
        let mut tx = TenantTx::begin(&state.pool, *context).await?;
        let current = sqlx::query!(
            "SELECT model, version FROM app.scoring_models WHERE org_id = $1 FOR UPDATE",
            org
        )
        .fetch_one(&mut *tx)
        .await?;
        if current.version != version {
            // Saved again meanwhile: the next claim starts over with the new model.
            return Ok(());
        }
        let model: Model = serde_json::from_value(current.model).unwrap_or_default();
        let rows = sqlx::query_as!(
            Stored,
            r#"SELECT id, seniority, department, industry, employee_range, country, region,
                      source, tags, email_bidx IS NOT NULL AS "has_email!",
                      phone_ct IS NOT NULL AS "has_phone!",
                      linkedin_url IS NOT NULL AS "has_linkedin!", score
               FROM app.leads WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2)
               ORDER BY id LIMIT $3"#,
            org,
            after,
            BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        let mut scores = Vec::new();
        for r in &rows {
            let score = model.score(&r.values()).0;
            if score != r.score {
                ids.push(r.id);
                scores.push(score);
            }
        }
        if !ids.is_empty() {
            sqlx::query!(
                "UPDATE app.leads l SET score = u.score
                 FROM UNNEST($2::uuid[], $3::smallint[]) AS u(id, score)
                 WHERE l.org_id = $1 AND l.id = u.id",
                org,
                &ids,
                &scores
            )
            .execute(&mut *tx)
            .await?;
        }
        let last = rows.last().map(|r| r.id);
        let done = i64::try_from(rows.len()).unwrap_or(BATCH) < BATCH;
        sqlx::query!(
            "UPDATE app.scoring_models
                SET rescore_after = $2, rescored_rows = rescored_rows + $3,
                    rescored_version = CASE WHEN $4 THEN version ELSE rescored_version END,
                    rescore_lease = CASE WHEN $4 THEN NULL ELSE $5::timestamptz END
              WHERE org_id = $1 AND version = $6",
            org,
            if done { None } else { last },
            i64::try_from(rows.len()).unwrap_or(0),
            done,
            state.clock.now() + time::Duration::seconds(60),
            version
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!("leads_rescored_total").increment(ids.len() as u64);
        if done {
            tracing::info!(org = %org, version, "leads rescored");
            return Ok(());
        }
        after = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Model {
        Model::parse(json!({"rules": [
            {"name": "Decision maker", "field": "seniority", "values": ["c_level", "vp"], "points": 40},
            {"name": "Software", "field": "industry", "values": ["Software"], "points": 25},
            {"name": "Mid-market", "field": "employee_range", "values": ["51-200", "201-500"], "points": 20},
            {"name": "DACH", "field": "country", "values": ["DE", "AT", "CH"], "points": 10},
            {"name": "Reachable", "field": "has_email", "points": 15},
            {"name": "Student", "field": "tag", "values": ["student"], "points": -60}
        ]}))
        .unwrap()
    }

    #[test]
    fn a_score_is_the_clamped_sum_of_the_rules_met_and_says_which() {
        let lead = LeadValues {
            seniority: Some("vp".into()),
            industry: Some("software".into()),
            employee_range: Some("51-200".into()),
            country: Some("DE".into()),
            email: Some("a@example.com".into()),
            ..LeadValues::default()
        };
        let (score, why) = model().score(&lead);
        assert_eq!(score, 100, "40 + 25 + 20 + 10 + 15 = 110, clamped");
        assert_eq!(why.len(), 5);
        assert_eq!(why[0].rule, "Decision maker");
        let student = LeadValues {
            tags: vec!["Student".into()],
            email: Some("s@example.edu".into()),
            ..LeadValues::default()
        };
        let (score, why) = model().score(&student);
        assert_eq!(score, 0, "15 - 60, clamped at 0");
        assert_eq!(why.iter().map(|c| c.points).sum::<i16>(), -45);
        assert_eq!(Model::default().score(&student).0, 0);
    }

    #[test]
    fn mistakes_name_their_json_path() {
        for (m, want) in [
            (
                json!({"rules": [{"name": "x", "field": "seniority", "values": ["boss"], "points": 5}]}),
                "rules[0].values[0]: not a seniority",
            ),
            (
                json!({"rules": [{"name": "x", "field": "country", "values": ["Germany"], "points": 5}]}),
                "rules[0].values[0]: an ISO 3166",
            ),
            (
                json!({"rules": [{"name": "x", "field": "has_email", "values": ["yes"], "points": 5}]}),
                "rules[0].values",
            ),
            (
                json!({"rules": [{"name": "x", "field": "industry", "values": ["a"], "points": 500}]}),
                "rules[0].points",
            ),
            (
                json!({"rules": [{"name": "x", "field": "colour", "values": ["a"], "points": 5}]}),
                "rules[0].field",
            ),
            (
                json!({"rules": [{"name": "x", "field": "tag", "values": ["a"], "points": 5, "weight": 1}]}),
                "rules[0]",
            ),
            (
                json!({"rules": [
                {"name": "Same", "field": "tag", "values": ["a"], "points": 5},
                {"name": "same", "field": "tag", "values": ["b"], "points": 5}]}),
                "rules[1].name",
            ),
        ] {
            let e = Model::parse(m).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
