//! Companies: one record per organization and normalised domain, with its NAICS code, industry,
//! size, revenue, technologies and location.
//!
//! Leads link to their company (`company_id`) and keep a copy of its name, domain, industry and
//! size, which search filters and scoring read without a join. Imports link whole batches and
//! create the companies they name; the API's writes are linked by a trigger. Editing a company
//! pushes those four fields to every one of its leads and rescores them, as an admin of the
//! organization, like the bulk rescoring: the fields are the company's, whoever may read each
//! lead, and the push writes nothing else. Its `version` and `leads_version` make the push
//! durable: one a crash interrupts is finished by [`run`].

pub mod api;
pub mod model;
pub mod pages;

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Aal, Role, TenantContext, TenantTx};
use crate::leads::model::LeadValues;
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

/// What an import batch needs of a company: its id, and the fields that fill a row's blanks.
struct Linked {
    id: Uuid,
    domain: String,
    name: Option<String>,
    industry: Option<String>,
    employee_range: Option<String>,
}

/// The organization's companies with these domains.
async fn by_domains(tx: &mut TenantTx, domains: &[String]) -> Result<Vec<Linked>, sqlx::Error> {
    let org = tx.context().org_id;
    // A join with the list, not `domain = ANY(list)`: the planner turned the latter into a filter
    // over every company of the organization (measured: 118 ms against 3 ms for 3,000 domains).
    sqlx::query_as!(
        Linked,
        r#"SELECT c.id, c.domain AS "domain!", c.name, c.industry, c.employee_range
           FROM UNNEST($2::text[]) AS d(domain)
           JOIN app.companies c ON c.org_id = $1 AND c.domain = d.domain"#,
        org,
        domains
    )
    .fetch_all(&mut **tx)
    .await
}

/// Links a batch of imported leads to their companies: creates the companies the organization
/// does not have yet (from the first row naming each domain), fills the rows' blank company
/// fields from their company (before they are scored), and returns each domain's company.
pub async fn link_batch(
    tx: &mut TenantTx,
    rows: &mut [LeadValues],
    now: OffsetDateTime,
) -> Result<HashMap<String, Uuid>, sqlx::Error> {
    let mut first: BTreeMap<&str, &LeadValues> = BTreeMap::new();
    for r in rows.iter() {
        if let Some(d) = r.company_domain.as_deref() {
            first.entry(d).or_insert(r);
        }
    }
    if first.is_empty() {
        return Ok(HashMap::new());
    }
    let domains: Vec<String> = first.keys().map(|d| (*d).to_string()).collect();
    // Most batches of a large import name companies that exist by then: looked up first, and
    // only the missing ones inserted.
    let mut found = by_domains(tx, &domains).await?;
    if found.len() < domains.len() {
        let known: std::collections::HashSet<&str> =
            found.iter().map(|c| c.domain.as_str()).collect();
        // In domain order (`first` is sorted): two import writers inserting the same new domains
        // lock them in the same order, so they wait for each other instead of deadlocking.
        let new: Vec<&LeadValues> = first
            .iter()
            .filter(|(d, _)| !known.contains(**d))
            .map(|(_, r)| *r)
            .collect();
        let missing: Vec<String> = new
            .iter()
            .filter_map(|r| r.company_domain.clone())
            .collect();
        let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
        let names: Vec<Option<String>> = new.iter().map(|r| r.company_name.clone()).collect();
        let industries: Vec<Option<String>> = new.iter().map(|r| r.industry.clone()).collect();
        let ranges: Vec<Option<String>> = new.iter().map(|r| r.employee_range.clone()).collect();
        let ctx = tx.context();
        sqlx::query!(
            "INSERT INTO app.companies (id, org_id, name, domain, industry, employee_range,
                                        updated_by, created_at, updated_at)
             SELECT u.id, $1, u.name, u.domain, u.industry, u.employee_range, $2, $3, $3
             FROM UNNEST($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[])
               AS u(id, domain, name, industry, employee_range)
             ORDER BY u.domain
             ON CONFLICT (org_id, domain) WHERE domain IS NOT NULL DO NOTHING",
            ctx.org_id,
            ctx.user_id,
            now,
            &ids,
            &missing,
            &names as &[Option<String>],
            &industries as &[Option<String>],
            &ranges as &[Option<String>],
        )
        .execute(&mut **tx)
        .await?;
        // Read back: what this batch inserted, and what another writer inserted meanwhile.
        found.extend(by_domains(tx, &missing).await?);
    }
    let by_domain: HashMap<&str, &Linked> = found.iter().map(|c| (c.domain.as_str(), c)).collect();
    for r in rows.iter_mut() {
        if let Some(c) = r.company_domain.as_deref().and_then(|d| by_domain.get(d)) {
            if r.company_name.is_none() {
                r.company_name.clone_from(&c.name);
            }
            if r.industry.is_none() {
                r.industry.clone_from(&c.industry);
            }
            if r.employee_range.is_none() {
                r.employee_range.clone_from(&c.employee_range);
            }
        }
    }
    Ok(found.into_iter().map(|c| (c.domain, c.id)).collect())
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
