//! Companies: one record per organization and normalised domain, with its NAICS code, industry,
//! size, revenue, technologies and location.
//!
//! Leads link to their company (`company_id`) and keep a copy of its name, domain, industry and
//! size, which search filters and scoring read without a join. Imports link whole batches and
//! create the companies they name (`leads::import::link`); the API's writes are linked by a
//! trigger. Editing a company
//! pushes those four fields to every one of its leads and rescores them, as an admin of the
//! organization, like the bulk rescoring: the fields are the company's, whoever may read each
//! lead, and the push writes nothing else. Its `version` and `leads_version` make the push
//! durable: one a crash interrupts is finished by [`run`].

pub mod api;
pub mod model;
pub mod pages;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Aal, Role, TenantContext, TenantTx};
use crate::leads::scoring::{self, Stored};
use crate::leads::{LeadsError, LeadsState};
use model::{CompanyValues, CompanyView};

/// A stored company.
pub struct CompanyRow {
    pub id: Uuid,
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
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl CompanyRow {
    #[must_use]
    pub fn values(&self) -> CompanyValues {
        CompanyValues {
            name: self.name.clone(),
            domain: self.domain.clone(),
            naics: self.naics.clone(),
            industry: self.industry.clone(),
            employee_range: self.employee_range.clone(),
            annual_revenue: self.annual_revenue,
            technologies: self.technologies.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            country: self.country.clone(),
        }
    }

    #[must_use]
    pub fn view(&self) -> CompanyView {
        CompanyView {
            id: self.id,
            values: self.values(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// What lists and pages show as its name.
    #[must_use]
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.domain.clone())
            .unwrap_or_default()
    }
}

/// The company `id` of the transaction's organization.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<CompanyRow>, sqlx::Error> {
    let org = tx.context().org_id;
    sqlx::query_as!(
        CompanyRow,
        "SELECT id, name, domain, naics, industry, employee_range, annual_revenue, technologies,
                city, region, country, created_at, updated_at
         FROM app.companies WHERE org_id = $1 AND id = $2",
        org,
        id
    )
    .fetch_optional(&mut **tx)
    .await
}

/// A page of companies in name order; `prefix` narrows to names starting with it or that exact
/// domain; `after` is the last id of the previous page.
pub async fn list(
    tx: &mut TenantTx,
    prefix: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CompanyRow>, sqlx::Error> {
    let org = tx.context().org_id;
    let like = prefix.map(|p| {
        format!(
            "{}%",
            p.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let domain = prefix.and_then(crate::leads::model::domain);
    sqlx::query_as!(
        CompanyRow,
        "SELECT id, name, domain, naics, industry, employee_range, annual_revenue, technologies,
                city, region, country, created_at, updated_at
         FROM app.companies c
         WHERE org_id = $1
           AND ($2::text IS NULL OR lower(name) LIKE $2 OR domain = $3)
           AND ($4::uuid IS NULL OR (lower(coalesce(name, domain)), id) >
                (SELECT lower(coalesce(a.name, a.domain)), a.id FROM app.companies a
                 WHERE a.org_id = $1 AND a.id = $4))
         ORDER BY lower(coalesce(name, domain)), id LIMIT $5",
        org,
        like,
        domain,
        after,
        limit
    )
    .fetch_all(&mut **tx)
    .await
}

/// How many of the company's leads the principal can read, up to `cap` (+1 past it).
pub async fn lead_count(tx: &mut TenantTx, id: Uuid, cap: i64) -> Result<i64, sqlx::Error> {
    let org = tx.context().org_id;
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM (SELECT 1 FROM app.leads
            WHERE org_id = $1 AND company_id = $2 LIMIT $3) l"#,
        org,
        id,
        cap + 1
    )
    .fetch_one(&mut **tx)
    .await
}

/// Pushes company `id`'s name, domain, industry and size to all of its leads and rescores them,
/// as an admin of `org` (see the module's note); a field the company leaves blank keeps the
/// lead's own value. Records the version pushed.
pub async fn push(state: &LeadsState, org: Uuid, actor: Uuid, id: Uuid) -> Result<(), LeadsError> {
    let context = TenantContext {
        org_id: org,
        user_id: actor,
        role: Role::Admin,
        aal: Aal::Aal1,
    };
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    // Locked, so two edits' pushes run one after the other and the later one's values stay.
    let Some(c) = sqlx::query!(
        "SELECT name, domain, industry, employee_range, version FROM app.companies
         WHERE org_id = $1 AND id = $2 FOR UPDATE",
        org,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    let (model, _) = scoring::current(&mut tx).await?;
    let leads = sqlx::query_as!(
        Stored,
        r#"SELECT id, seniority, department, industry, employee_range, country, region,
                  source, tags, email_bidx IS NOT NULL AS "has_email!",
                  phone_ct IS NOT NULL AS "has_phone!",
                  linkedin_url IS NOT NULL AS "has_linkedin!", score
           FROM app.leads WHERE org_id = $1 AND company_id = $2"#,
        org,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut ids = Vec::with_capacity(leads.len());
    let mut scores = Vec::with_capacity(leads.len());
    for l in &leads {
        let mut v = l.values();
        if c.industry.is_some() {
            v.industry.clone_from(&c.industry);
        }
        if c.employee_range.is_some() {
            v.employee_range.clone_from(&c.employee_range);
        }
        ids.push(l.id);
        scores.push(model.score(&v).0);
    }
    sqlx::query!(
        "UPDATE app.leads l SET company_name = coalesce($3, l.company_name),
                company_domain = coalesce($4, l.company_domain),
                industry = coalesce($5, l.industry),
                employee_range = coalesce($6, l.employee_range), score = u.score
         FROM UNNEST($7::uuid[], $8::smallint[]) AS u(id, score)
         WHERE l.org_id = $1 AND l.company_id = $2 AND l.id = u.id",
        org,
        id,
        c.name,
        c.domain,
        c.industry,
        c.employee_range,
        &ids,
        &scores
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE app.companies SET leads_version = $3 WHERE org_id = $1 AND id = $2",
        org,
        id,
        c.version
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("company_leads_pushed_total").increment(ids.len() as u64);
    Ok(())
}

/// Finishes pushes that a crash (or a failed request) left undone, until the task is dropped.
pub async fn run(state: LeadsState) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        // Older than half a minute: a push its own request is doing is left to it.
        let before = state.clock.now() - time::Duration::seconds(30);
        let pending = sqlx::query!(
            r#"SELECT org_id AS "org_id!", id AS "id!", actor FROM app.companies_unpushed($1, 20)"#,
            before
        )
        .fetch_all(&state.pool)
        .await;
        match pending {
            Ok(rows) => {
                for r in rows {
                    if let Err(e) =
                        push(&state, r.org_id, r.actor.unwrap_or(Uuid::nil()), r.id).await
                    {
                        tracing::warn!(company = %r.id, error = %e, "pushing a company's fields to its leads failed; retrying");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for company pushes"),
        }
    }
}
