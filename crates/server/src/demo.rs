//! The demo organization that the README's first command creates, so a newcomer has something
//! to look at. Created through [`TenantTx`] like any tenant data: the server never needs more
//! privilege than row-level security allows it.

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{Aal, Role, TenantContext, TenantTx};

/// Fixed ids make creation idempotent across restarts.
pub const DEMO_ORG_ID: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_de01);
pub const DEMO_ADMIN_ID: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_de02);
pub const DEMO_ORG_NAME: &str = "Acme Demo";
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.leadgen.localhost";

#[derive(Debug, Clone)]
pub struct Demo {
    pub org_id: Uuid,
    pub org_name: String,
    pub admin_id: Uuid,
    pub admin_email: String,
    pub created: bool,
}

/// Creates the demo organization and its admin when missing.
pub async fn ensure(pool: &PgPool) -> Result<Demo, sqlx::Error> {
    let ctx = TenantContext {
        org_id: DEMO_ORG_ID,
        user_id: DEMO_ADMIN_ID,
        role: Role::Admin,
        aal: Aal::Aal1,
    };
    let mut tx = TenantTx::begin(pool, ctx).await?;
    let created = sqlx::query!(
        "INSERT INTO app.organizations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        DEMO_ORG_ID,
        DEMO_ORG_NAME
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query!(
        "INSERT INTO app.users (id, email, display_name) VALUES ($1, $2, 'Demo Admin') ON CONFLICT (id) DO NOTHING",
        DEMO_ADMIN_ID,
        DEMO_ADMIN_EMAIL
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO app.memberships (org_id, user_id, role) VALUES ($1, $2, 'admin') ON CONFLICT DO NOTHING",
        DEMO_ORG_ID,
        DEMO_ADMIN_ID
    )
    .execute(&mut *tx)
    .await?;
    let org_name = sqlx::query_scalar!(
        "SELECT name FROM app.organizations WHERE id = $1",
        DEMO_ORG_ID
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Demo {
        org_id: DEMO_ORG_ID,
        org_name,
        admin_id: DEMO_ADMIN_ID,
        admin_email: DEMO_ADMIN_EMAIL.into(),
        created,
    })
}

/// Tells the operator on the terminal what exists (not through the log: this is for the person
/// who just ran the command).
pub fn announce(demo: &Demo, https_port: u16) {
    let verb = if demo.created { "created" } else { "present" };
    println!(
        "\nLeadGen demo organization {verb}: \"{}\" ({})\n  admin: {} ({})\n  open:  https://localhost:{https_port}/\n",
        demo.org_name, demo.org_id, demo.admin_email, demo.admin_id
    );
}
