//! The demo organization that the README's first command creates, so a newcomer has something
//! to look at. Created under row-level security like any user's data: the server never needs
//! more privilege than the policies allow it.

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::UserTx;

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

/// Creates the demo organization and its admin when missing, the way a user would: the admin's
/// account first, then the organization through `app.org_create`, which makes its creator admin.
pub async fn ensure(pool: &PgPool) -> Result<Demo, sqlx::Error> {
    let mut tx = UserTx::begin(pool, DEMO_ADMIN_ID).await?;
    sqlx::query!(
        "INSERT INTO app.users (id, email, display_name) VALUES ($1, $2, 'Demo Admin') ON CONFLICT (id) DO NOTHING",
        DEMO_ADMIN_ID,
        DEMO_ADMIN_EMAIL
    )
    .execute(&mut *tx)
    .await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM app.organizations WHERE id = $1) AS "exists!""#,
        DEMO_ORG_ID
    )
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        sqlx::query!("SELECT app.org_create($1, $2)", DEMO_ORG_ID, DEMO_ORG_NAME)
            .execute(&mut *tx)
            .await?;
    }
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
        created: !exists,
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
