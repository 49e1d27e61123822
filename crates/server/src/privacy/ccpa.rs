//! `PUT /api/v1/leads/{id}/ccpa`: a lead's California residency, when its region and country
//! do not tell, and the person's opt-out of the sale or sharing of their data.
//!
//! Residency is derived by the database on every write (`app.is_california`), whichever path
//! the lead came by; this route only overrides the derivation, or returns to it (`null`).
//! Recording an opt-out is open to whoever may edit the lead; withdrawing one is the person's
//! decision, recorded by an admin at `aal2`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{self, Entry, Meta};
use crate::db::{Role, TenantTx};
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new().routes(routes!(put_ccpa))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CcpaBody {
    /// `true` or `false` to say it explicitly, `null` to derive it from region and country
    /// again; absent to leave it.
    #[schema(value_type = Option<bool>)]
    #[serde(default, deserialize_with = "present")]
    pub california: Option<Value>,
    /// The person opted out of the sale or sharing of their data.
    pub do_not_sell: Option<bool>,
}

/// A field that is there, `null` included (serde's own `Option` reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[utoipa::path(put, path = "/api/v1/leads/{id}/ccpa", tag = "leads", request_body = CcpaBody,
    params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 200, description = "The lead's CCPA flags as they now are; audited", body = Object), Missing, Refusals))]
async fn put_ccpa(
    State(state): State<LeadsState>,
    Require(member, _): Require<perm::LeadSearchAndManagement>,
    meta: Meta,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<CcpaBody>,
) -> Result<Response, AppError> {
    // Some(None): back to the derivation.
    let california: Option<Option<bool>> = match body.california {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Bool(b)) => Some(Some(b)),
        Some(_) => {
            return Err(AppError::BadRequest(
                "california: true, false, or null to derive it from region and country".into(),
            ));
        }
    };
    if california.is_none() && body.do_not_sell.is_none() {
        return Err(AppError::BadRequest(
            "body: name california, do_not_sell or both".into(),
        ));
    }
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    // Locked for the change: the opt-out rule reads what is there.
    let current = sqlx::query!(
        "SELECT do_not_sell FROM app.leads WHERE org_id = $1 AND id = $2 FOR UPDATE",
        member.org_id,
        id
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(AppError::from)?
    .ok_or(AppError::NotFound)?;
    if current.do_not_sell && body.do_not_sell == Some(false) {
        if member.role != Role::Admin || member.api_key.is_some() {
            return Err(AppError::Denied {
                code: "forbidden",
                message: "do_not_sell: only an admin withdraws a person's opt-out, on their word"
                    .into(),
            });
        }
        crate::orgs::permissions::critical(&member)?;
    }
    let row = sqlx::query!(
        r#"UPDATE app.leads SET
             california_set = CASE WHEN $3 THEN $4 ELSE california_set END,
             do_not_sell = coalesce($5, do_not_sell),
             updated_at = $6
           WHERE org_id = $1 AND id = $2
           RETURNING california AS "california!", california_set, do_not_sell"#,
        member.org_id,
        id,
        california.is_some(),
        california.flatten(),
        body.do_not_sell,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    // Readable but not writable under the lead's ACL.
    .ok_or(AppError::NotFound)?;
    let flags = json!({
        "california": row.california,
        "california_explicit": row.california_set.is_some(),
        "do_not_sell": row.do_not_sell,
    });
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "lead.ccpa",
            target: Some(format!("lead:{id}")),
            before: Some(json!({ "do_not_sell": current.do_not_sell })),
            after: Some(flags.clone()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(flags).into_response())
}
