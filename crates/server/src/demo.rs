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
    /// The admin's password, only when the admin was just created (it is shown once).
    pub admin_password: Option<String>,
}

/// A random password: 20 characters from a 62-letter alphabet, about 119 bits.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(20);
    let mut b = [0u8; 1];
    while out.len() < 20 {
        rand::fill(&mut b[..]);
        let i = usize::from(b[0]);
        // Rejection sampling keeps the letters uniform.
        if i < ALPHABET.len() * (256 / ALPHABET.len()) {
            out.push(char::from(ALPHABET[i % ALPHABET.len()]));
        }
    }
    out
}

/// Creates the demo organization and its admin when missing, the way a user would: the admin's
/// account first, then the organization through `app.org_create`, which makes its creator admin.
pub async fn ensure(pool: &PgPool, bcrypt_cost: u32) -> anyhow::Result<Demo> {
    let mut tx = UserTx::begin(pool, DEMO_ADMIN_ID).await?;
    let new_admin = sqlx::query!(
        "INSERT INTO app.users (id, email, display_name, email_confirmed_at)
         VALUES ($1, $2, 'Demo Admin', now()) ON CONFLICT (id) DO NOTHING",
        DEMO_ADMIN_ID,
        DEMO_ADMIN_EMAIL
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    // A new admin gets a random password, shown once on the terminal, so the demo can be signed
    // in to; it is stored like any other (bcrypt).
    let admin_password = if new_admin {
        let password = random_password();
        let hash = {
            let p = password.clone();
            tokio::task::spawn_blocking(move || leadgen_crypto::password::hash(&p, bcrypt_cost))
                .await??
        };
        sqlx::query!(
            "INSERT INTO app.credentials (user_id, password_hash) VALUES ($1, $2)",
            DEMO_ADMIN_ID,
            hash
        )
        .execute(&mut *tx)
        .await?;
        Some(password)
    } else {
        None
    };
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
        admin_password,
    })
}

/// Tells the operator on the terminal what exists (not through the log: this is for the person
/// who just ran the command).
pub fn announce(demo: &Demo, https_port: Option<u16>) {
    let verb = if demo.created { "created" } else { "present" };
    let password = match &demo.admin_password {
        Some(p) => format!("{p}  (shown only now; sign-in asks you to set up an authenticator)"),
        None => "as shown when the demo was created".into(),
    };
    // Without a server (`leadgen demo seed`) there is no address yet: the server prints it.
    let open = https_port.map_or_else(
        || "/login on the address the server prints when it serves".to_owned(),
        |port| format!("https://localhost:{port}/login"),
    );
    println!(
        "\nLeadGen demo organization {verb}: \"{}\" ({})\n  admin: {} ({})\n  password: {password}\n  open:  {open}\n",
        demo.org_name, demo.org_id, demo.admin_email, demo.admin_id
    );
}
