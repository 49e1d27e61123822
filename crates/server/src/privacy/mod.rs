//! The data lifecycle: how long lead data is kept, what happens when its time is up, and what
//! the people in the leads may ask for (GDPR and CCPA requests, the CCPA flags), and deleting
//! members' accounts.

pub mod accounts;
pub mod ccpa;
pub mod requests;
pub mod retention;

/// A transaction as `leadgen_maintenance`, the role the data-lifecycle jobs narrow the migration
/// connection to: it reads every organization, and may change only what its grants allow.
async fn maintenance(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE leadgen_maintenance")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
