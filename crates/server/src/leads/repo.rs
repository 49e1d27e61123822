//! Lead storage: every statement runs in the caller's [`TenantTx`], so row-level security scopes
//! it to the organization and the principal's ACL. Email and phone are encrypted here, on the way
//! in, and decrypted on the way out; nothing else in the server sees a ciphertext.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::keys::{FieldKeys, OrgSealer, lead_place};
use super::model::{LeadValues, LeadView};
use super::search::{Filter, Page, push_filters, push_keyset, push_order};
use crate::db::TenantTx;
use crate::leads::LeadsError;

/// The columns every read selects.
pub const COLUMNS: &str = "id, org_id, first_name, last_name, title, seniority, department, email_ct, \
     email_bidx, phone_ct, linkedin_url, company_id, company_name, company_domain, industry, employee_range, city, region, \
     country, source, status, owner_id, tags, custom, score, do_not_contact, read_groups, \
     write_groups, sensitivity, acl_revision, created_at, updated_at, california, california_set, do_not_sell";

#[derive(Debug, Clone, FromRow)]
pub struct LeadRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub seniority: Option<String>,
    pub department: Option<String>,
    pub email_ct: Option<Vec<u8>>,
    pub email_bidx: Option<Vec<u8>>,
    pub phone_ct: Option<Vec<u8>>,
    pub linkedin_url: Option<String>,
    pub company_id: Option<Uuid>,
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
    pub custom: serde_json::Value,
    pub score: i16,
    pub do_not_contact: bool,
    pub read_groups: Vec<Uuid>,
    pub write_groups: Vec<Uuid>,
    pub sensitivity: String,
    pub acl_revision: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Derived from region and country unless `california_set` says otherwise (CCPA).
    pub california: bool,
    pub california_set: Option<bool>,
    pub do_not_sell: bool,
}

fn crypto_error(e: leadgen_crypto::field::FieldError, lead: Uuid) -> LeadsError {
    // A ciphertext that does not open is tampering or a lost key: loud in the log, a 500 outside.
    tracing::error!(%lead, error = %e, "a lead field did not decrypt");
    LeadsError::Internal(anyhow::anyhow!("lead {lead}: field did not decrypt: {e}"))
}

impl LeadRow {
    /// The values without the encrypted fields (email and phone left empty), for merges that
    /// never change those.
    #[must_use]
    pub fn plain_values(&self) -> LeadValues {
        LeadValues {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            title: self.title.clone(),
            seniority: self.seniority.clone(),
            department: self.department.clone(),
            email: None,
            phone: None,
            linkedin_url: self.linkedin_url.clone(),
            company_name: self.company_name.clone(),
            company_domain: self.company_domain.clone(),
            industry: self.industry.clone(),
            employee_range: self.employee_range.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            country: self.country.clone(),
            source: self.source.clone(),
            status: self.status.clone(),
            owner_id: self.owner_id,
            tags: self.tags.clone(),
            custom: match &self.custom {
                serde_json::Value::Object(m) => m.clone(),
                _ => serde_json::Map::new(),
            },
            do_not_contact: self.do_not_contact,
            masked_fields: Vec::new(),
        }
    }

    /// Decrypts the contact fields.
    pub async fn values(&self, keys: &FieldKeys) -> Result<LeadValues, LeadsError> {
        let open = |col: &'static str, ct: &Option<Vec<u8>>| {
            let ct = ct.clone();
            async move {
                match ct {
                    None => Ok(None),
                    Some(ct) => keys
                        .decrypt(&ct, &lead_place(col, self.org_id, self.id))
                        .await
                        .map(Some)
                        .map_err(|e| crypto_error(e, self.id)),
                }
            }
        };
        Ok(LeadValues {
            email: open("email", &self.email_ct).await?,
            phone: open("phone", &self.phone_ct).await?,
            ..self.plain_values()
        })
    }

    /// Whether the lead's contact details are shown only with a justification.
    #[must_use]
    pub fn restricted(&self) -> bool {
        self.sensitivity == "restricted"
    }

    /// The lead as readers see it: a restricted lead without its contact details (see
    /// [`super::reads`]).
    pub async fn view(&self, keys: &FieldKeys) -> Result<LeadView, LeadsError> {
        let mut v = self.view_revealed(keys).await?;
        if self.restricted() {
            v.values.hide_contact_details();
            v.contact_details_hidden = true;
        }
        Ok(v)
    }

    /// The lead with every field, restricted or not: for a reader who gave a justification,
    /// or a legal request, each recorded by the caller.
    pub async fn view_revealed(&self, keys: &FieldKeys) -> Result<LeadView, LeadsError> {
        Ok(LeadView {
            id: self.id,
            contact_details_hidden: false,
            values: self.values(keys).await?,
            company_id: self.company_id,
            score: self.score,
            sensitivity: self.sensitivity.clone(),
            read_groups: self.read_groups.clone(),
            write_groups: self.write_groups.clone(),
            acl_revision: self.acl_revision,
            california: self.california,
            california_explicit: self.california_set.is_some(),
            do_not_sell: self.do_not_sell,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The stored form of a lead's values: ciphertexts and the blind index in place of plaintext.
struct Sealed {
    email_ct: Option<Vec<u8>>,
    email_bidx: Option<Vec<u8>>,
    phone_ct: Option<Vec<u8>>,
}

fn seal(keys: &OrgSealer, id: Uuid, v: &LeadValues) -> Sealed {
    let org = keys.org();
    Sealed {
        email_ct: v
            .email
            .as_deref()
            .map(|e| keys.encrypt(e, &lead_place("email", org, id))),
        email_bidx: v
            .email
            .as_deref()
            .and_then(|e| keys.email_index(e))
            .map(|i| i.to_vec()),
        phone_ct: v
            .phone
            .as_deref()
            .map(|p| keys.encrypt(p, &lead_place("phone", org, id))),
    }
}

/// The organization's sealer must be the transaction's: anything else is a bug, refused before
/// a row is written under the wrong keys.
fn check_sealer(tx: &TenantTx, keys: &OrgSealer) -> Result<Uuid, LeadsError> {
    let org = tx.context().org_id;
    if keys.org() != org {
        return Err(LeadsError::Internal(anyhow::anyhow!(
            "sealing for organization {} inside organization {org}",
            keys.org()
        )));
    }
    Ok(org)
}

fn duplicate(e: sqlx::Error) -> LeadsError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("leads_email") => LeadsError::Conflict(
            "email: a lead with this email address already exists in this organization".into(),
        ),
        // The guard behind the checks of import and capture forms (migration 38).
        sqlx::Error::Database(d) if d.constraint() == Some("leads_email_erased") => {
            LeadsError::Conflict(
                "email: erased on request: this address was erased at its owner's request and \
                 cannot become a lead again"
                    .into(),
            )
        }
        _ => e.into(),
    }
}

pub async fn insert(
    tx: &mut TenantTx,
    keys: &OrgSealer,
    id: Uuid,
    v: &LeadValues,
    score: i16,
    now: OffsetDateTime,
) -> Result<(), LeadsError> {
    let org = check_sealer(tx, keys)?;
    let s = seal(keys, id, v);
    sqlx::query!(
        "INSERT INTO app.leads (id, org_id, first_name, last_name, title, seniority, department,
            email_ct, email_bidx, phone_ct, linkedin_url, company_name, company_domain, industry,
            employee_range, city, region, country, source, status, owner_id, tags, custom,
            do_not_contact, created_at, updated_at, score)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19, $20, $21, $22, $23, $24, $25, $25, $26)",
        id,
        org,
        v.first_name,
        v.last_name,
        v.title,
        v.seniority,
        v.department,
        s.email_ct,
        s.email_bidx,
        s.phone_ct,
        v.linkedin_url,
        v.company_name,
        v.company_domain,
        v.industry,
        v.employee_range,
        v.city,
        v.region,
        v.country,
        v.source,
        v.status,
        v.owner_id,
        &v.tags,
        serde_json::Value::Object(v.custom.clone()),
        v.do_not_contact,
        now,
        score,
    )
    .execute(&mut **tx)
    .await
    .map_err(duplicate)?;
    audit_masked(tx, id, v, now).await?;
    Ok(())
}

/// Records in the audit trail which fields of a lead had card numbers masked before they were
/// stored (the fields' names, never a digit of the numbers).
async fn audit_masked(
    tx: &mut TenantTx,
    id: Uuid,
    v: &LeadValues,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    if v.masked_fields.is_empty() {
        return Ok(());
    }
    crate::pci::record_masked("leads", v.masked_fields.len());
    crate::audit::record(
        tx,
        now,
        &crate::audit::Meta::default(),
        crate::audit::Entry {
            action: "pci.pan_masked",
            target: Some(format!("lead:{id}")),
            before: None,
            after: Some(serde_json::json!({ "fields": v.masked_fields })),
        },
    )
    .await
}

/// Writes `v` over lead `id`; false when the principal may not write it (or it is gone).
pub async fn update(
    tx: &mut TenantTx,
    keys: &OrgSealer,
    id: Uuid,
    v: &LeadValues,
    score: i16,
    now: OffsetDateTime,
) -> Result<bool, LeadsError> {
    let org = check_sealer(tx, keys)?;
    let s = seal(keys, id, v);
    let done = sqlx::query!(
        "UPDATE app.leads SET first_name = $3, last_name = $4, title = $5, seniority = $6,
            department = $7, email_ct = $8, email_bidx = $9, phone_ct = $10, linkedin_url = $11,
            company_name = $12, company_domain = $13, industry = $14, employee_range = $15,
            city = $16, region = $17, country = $18, source = $19, status = $20, owner_id = $21,
            tags = $22, custom = $23, do_not_contact = $24, updated_at = $25, score = $26
         WHERE id = $1 AND org_id = $2",
        id,
        org,
        v.first_name,
        v.last_name,
        v.title,
        v.seniority,
        v.department,
        s.email_ct,
        s.email_bidx,
        s.phone_ct,
        v.linkedin_url,
        v.company_name,
        v.company_domain,
        v.industry,
        v.employee_range,
        v.city,
        v.region,
        v.country,
        v.source,
        v.status,
        v.owner_id,
        &v.tags,
        serde_json::Value::Object(v.custom.clone()),
        v.do_not_contact,
        now,
        score,
    )
    .execute(&mut **tx)
    .await
    .map_err(duplicate)?;
    if done.rows_affected() == 1 {
        audit_masked(tx, id, v, now).await?;
    }
    Ok(done.rows_affected() == 1)
}

/// The lead, if the principal may read it (`FOR UPDATE` when about to change it).
pub async fn get(
    tx: &mut TenantTx,
    id: Uuid,
    for_update: bool,
) -> Result<Option<LeadRow>, sqlx::Error> {
    let org = tx.context().org_id;
    let mut qb =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM app.leads WHERE id = "));
    qb.push_bind(id).push(" AND org_id = ").push_bind(org);
    if for_update {
        qb.push(" FOR UPDATE");
    }
    qb.build_query_as::<LeadRow>()
        .fetch_optional(&mut **tx)
        .await
}

/// Whether the principal's ACL lets it write this (readable) lead.
pub async fn writable(tx: &mut TenantTx, id: Uuid) -> Result<bool, sqlx::Error> {
    let org = tx.context().org_id;
    // The same rule as the UPDATE policy, asked without changing anything.
    let r = sqlx::query_scalar!(
        r#"SELECT (app.current_role_name() = 'admin' OR write_groups = '{}'
                   OR write_groups && app.current_groups()) AS "ok!"
           FROM app.leads WHERE id = $1 AND org_id = $2"#,
        id,
        org
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(r.unwrap_or(false))
}

pub async fn delete(tx: &mut TenantTx, id: Uuid) -> Result<bool, sqlx::Error> {
    let org = tx.context().org_id;
    let r = sqlx::query!(
        "DELETE FROM app.leads WHERE id = $1 AND org_id = $2",
        id,
        org
    )
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One page of matching leads (and one row more when another page follows).
pub async fn search(
    tx: &mut TenantTx,
    filter: &Filter,
    page: &Page,
    for_export: bool,
) -> Result<Vec<LeadRow>, sqlx::Error> {
    let org = tx.context().org_id;
    // The organization is bound as a value, as well as enforced by the policy, so the planner
    // sees it and picks the tenant's indexes.
    let mut qb =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM app.leads WHERE org_id = "));
    if filter.text_rare {
        // `OFFSET 0` keeps the order and limit out of the subquery: the planner reads the few
        // matches through the full-text index instead of walking the newest leads.
        qb = QueryBuilder::new(format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM app.leads WHERE org_id = "
        ));
    }
    qb.push_bind(org);
    push_filters(&mut qb, filter, for_export);
    push_keyset(&mut qb, page);
    if filter.text_rare {
        qb.push(" OFFSET 0) matching");
    }
    push_order(&mut qb, page, 1);
    qb.build_query_as::<LeadRow>().fetch_all(&mut **tx).await
}

/// Counts beyond this are reported as "at least" unless an exact count is asked for: counting
/// every row of a large organization under its ACL reads the whole organization (about 250 ms
/// for 900,000 leads here), while the first 10,001 matches arrive in a few milliseconds.
pub const COUNT_CAP: i64 = 10_000;

/// The number of matching leads, up to `cap` (then `cap + 1`, meaning "more than `cap`").
pub async fn count(
    tx: &mut TenantTx,
    filter: &Filter,
    cap: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let org = tx.context().org_id;
    let mut qb = QueryBuilder::<Postgres>::new(if filter.text_rare {
        // As in `search`: the index first, then the cap.
        "SELECT count(*) FROM (SELECT 1 FROM (SELECT 1 FROM app.leads WHERE org_id = "
    } else {
        "SELECT count(*) FROM (SELECT 1 FROM app.leads WHERE org_id = "
    });
    qb.push_bind(org);
    push_filters(&mut qb, filter, false);
    if filter.text_rare {
        qb.push(" OFFSET 0) text");
    }
    if let Some(cap) = cap {
        qb.push(" LIMIT ").push_bind(cap + 1);
    }
    qb.push(") matching");
    qb.build_query_scalar::<i64>().fetch_one(&mut **tx).await
}
