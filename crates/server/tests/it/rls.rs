//! Row-level security: every app table is protected, the server's role cannot bypass it, and
//! one organization cannot see or touch another's rows.

use leadgen::db::{Aal, Role, TenantContext, TenantTx};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::TestDb;

/// Global tables that legitimately have no tenant scope. Each entry needs a comment saying why.
const GLOBAL_TABLE_ALLOWLIST: &[&str] = &[
    // Wrapped data-encryption keys: installation-wide, read by the server at start before any
    // tenant context exists, and useless without the master key, which never enters the database.
    // The server may only add keys (no UPDATE or DELETE grant).
    "data_keys",
    // Which per-organization data keys exist (ids, generation, retirement, destruction): no key
    // material (that stays in the key store outside the database), read when a key is first
    // used, which may be before any tenant context; the server may only add rows.
    "org_keys",
];

/// Tables in schema `app` that lack RLS enabled, FORCE, or any policy; empty means all is well.
async fn rls_violations(pool: &PgPool) -> Vec<String> {
    let rows: Vec<(String, bool, bool, i64)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p')
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .filter(|(name, ..)| !GLOBAL_TABLE_ALLOWLIST.contains(&name.as_str()))
        .filter_map(|(name, enabled, forced, policies)| {
            let mut missing = Vec::new();
            if !enabled {
                missing.push("RLS not enabled");
            }
            if !forced {
                missing.push("RLS not forced");
            }
            if policies == 0 {
                missing.push("no policy");
            }
            (!missing.is_empty()).then(|| format!("app.{name}: {}", missing.join(", ")))
        })
        .collect()
}

#[tokio::test]
async fn catalog_every_app_table_has_forced_rls_and_a_policy() {
    let db = TestDb::new().await;
    let su = db.superuser_pool().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' AND c.relkind IN ('r','p')",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert!(
        tables >= 3,
        "expected the foundation tables, found {tables}"
    );
    let violations = rls_violations(&su).await;
    assert!(
        violations.is_empty(),
        "tables without full row-level security:\n{}",
        violations.join("\n")
    );

    // The check itself can fail: a new table without RLS, then with RLS but not forced, is caught.
    sqlx::query("CREATE TABLE app.probe (id int)")
        .execute(&su)
        .await
        .unwrap();
    assert_eq!(
        rls_violations(&su).await,
        vec!["app.probe: RLS not enabled, RLS not forced, no policy".to_string()]
    );
    sqlx::query("ALTER TABLE app.probe ENABLE ROW LEVEL SECURITY")
        .execute(&su)
        .await
        .unwrap();
    sqlx::query("CREATE POLICY p ON app.probe USING (true)")
        .execute(&su)
        .await
        .unwrap();
    assert_eq!(
        rls_violations(&su).await,
        vec!["app.probe: RLS not forced".to_string()]
    );
}

#[tokio::test]
async fn app_role_is_not_owner_superuser_or_bypassrls() {
    let db = TestDb::new().await;
    let su = db.superuser_pool().await;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'leadgen_app'")
            .fetch_one(&su)
            .await
            .unwrap();
    assert!(!superuser, "leadgen_app must not be a superuser");
    assert!(!bypass, "leadgen_app must not have BYPASSRLS");
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relowner = 'leadgen_app'::regrole",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert!(owned.is_empty(), "leadgen_app owns {owned:?}");
    let schema_owner: String = sqlx::query_scalar(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app'",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(schema_owner, "leadgen_owner");
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT c.relowner::regrole::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app'",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert_eq!(
        owners,
        vec!["leadgen_owner".to_string()],
        "every app relation is owned by leadgen_owner"
    );
    let (m_super, m_bypass): (bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'leadgen_maintenance'",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert!(
        !m_super && m_bypass,
        "leadgen_maintenance: BYPASSRLS for cross-tenant jobs, never superuser"
    );

    // The server itself refuses to run as a role that would bypass RLS.
    let err = leadgen::db::connect_app(&db.migrate_url(), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("superuser"), "{err}");
    let err = leadgen::db::connect_app(&db.role_url("leadgen_maintenance"), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("BYPASSRLS"), "{err}");
}

struct Org {
    id: Uuid,
    admin: Uuid,
}

async fn create_org(pool: &PgPool, name: &str) -> Org {
    let org = Org {
        id: Uuid::now_v7(),
        admin: Uuid::now_v7(),
    };
    let ctx = TenantContext {
        org_id: org.id,
        user_id: org.admin,
        role: Role::Admin,
        aal: Aal::Aal2,
    };
    let mut tx = TenantTx::begin(pool, ctx).await.unwrap();
    sqlx::query("INSERT INTO app.organizations (id, name) VALUES ($1, $2)")
        .bind(org.id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO app.users (id, email) VALUES ($1, $2)")
        .bind(org.admin)
        .bind(format!("admin-{}@example.test", org.id.simple()))
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO app.memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')")
        .bind(org.id)
        .bind(org.admin)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    org
}

async fn counts(conn: &mut sqlx::PgConnection) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM app.organizations), (SELECT count(*) FROM app.users), (SELECT count(*) FROM app.memberships)",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

fn is_rls_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42501")
}

#[tokio::test]
async fn isolation_between_two_organizations() {
    let db = TestDb::new().await;
    // One connection, so the last check sees the very connection the transactions used.
    let pool = leadgen::db::connect_app(&db.app_url(), 1).await.unwrap();
    let a = create_org(&pool, "Org A").await;
    let b = create_org(&pool, "Org B").await;

    // No tenant context: nothing at all.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        counts(&mut conn).await,
        (0, 0, 0),
        "no context must see no rows"
    );
    drop(conn);

    let ctx_a = TenantContext {
        org_id: a.id,
        user_id: a.admin,
        role: Role::Admin,
        aal: Aal::Aal2,
    };
    let mut tx = TenantTx::begin(&pool, ctx_a).await.unwrap();
    assert_eq!(
        counts(&mut tx).await,
        (1, 1, 1),
        "org A sees exactly its own rows"
    );
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM app.organizations")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(orgs, vec![a.id]);
    let by_id: Option<String> =
        sqlx::query_scalar("SELECT name FROM app.organizations WHERE id = $1")
            .bind(b.id)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        by_id, None,
        "B's organization does not exist for A, even by id"
    );

    // UPDATE and DELETE of B's rows touch nothing.
    let r = sqlx::query("UPDATE app.organizations SET name = 'pwned' WHERE id = $1")
        .bind(b.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 0);
    let r = sqlx::query("DELETE FROM app.memberships WHERE org_id = $1")
        .bind(b.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 0);
    tx.commit().await.unwrap();

    // INSERT into B fails.
    let mut tx = TenantTx::begin(&pool, ctx_a).await.unwrap();
    let e =
        sqlx::query("INSERT INTO app.memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')")
            .bind(b.id)
            .bind(a.admin)
            .execute(&mut *tx)
            .await
            .unwrap_err();
    assert!(is_rls_violation(&e), "insert into B: {e}");
    drop(tx);

    // Moving one's own row into B fails.
    let mut tx = TenantTx::begin(&pool, ctx_a).await.unwrap();
    let e = sqlx::query("UPDATE app.memberships SET org_id = $1 WHERE org_id = $2")
        .bind(b.id)
        .bind(a.id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(is_rls_violation(&e), "update into B: {e}");
    drop(tx);

    // A user row for someone else cannot be created or rewritten.
    let mut tx = TenantTx::begin(&pool, ctx_a).await.unwrap();
    let e = sqlx::query("INSERT INTO app.users (id, email) VALUES ($1, 'intruder@example.test')")
        .bind(Uuid::now_v7())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(is_rls_violation(&e), "insert another user: {e}");
    drop(tx);

    // B is untouched, as seen by B.
    let ctx_b = TenantContext {
        org_id: b.id,
        user_id: b.admin,
        role: Role::Admin,
        aal: Aal::Aal2,
    };
    let mut tx = TenantTx::begin(&pool, ctx_b).await.unwrap();
    assert_eq!(counts(&mut tx).await, (1, 1, 1));
    let name: String = sqlx::query_scalar("SELECT name FROM app.organizations")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(name, "Org B");
    tx.commit().await.unwrap();

    // The context dies with the transaction: the pooled connection is clean again.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        counts(&mut conn).await,
        (0, 0, 0),
        "tenant settings must not survive the transaction"
    );
}

/// The only way around RLS open to the server: a few `SECURITY DEFINER` lookups. Each must be
/// owned by the dedicated definer role, pin its `search_path`, and not be executable by PUBLIC.
#[tokio::test]
async fn definer_functions_are_narrow_and_pinned() {
    let db = TestDb::new().await;
    let su = db.superuser_pool().await;
    let rows: Vec<(String, String, Option<Vec<String>>, bool)> = sqlx::query_as(
        "SELECT p.proname::text, p.proowner::regrole::text, p.proconfig,
                has_function_privilege('public', p.oid, 'EXECUTE')
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'app' AND p.prosecdef ORDER BY 1",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert!(rows.len() >= 3, "the sign-in lookups exist: {rows:?}");
    for (name, owner, config, public) in &rows {
        assert_eq!(owner, "leadgen_auth_definer", "{name}");
        let pinned = config
            .as_ref()
            .is_some_and(|c| c.iter().any(|s| s.starts_with("search_path=pg_catalog")));
        assert!(pinned, "{name} must pin search_path, has {config:?}");
        assert!(!public, "{name} must not be executable by PUBLIC");
    }
    let (login, super_, bypass): (bool, bool, bool) =
        sqlx::query_as("SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'leadgen_auth_definer'")
            .fetch_one(&su)
            .await
            .unwrap();
    assert!(
        !login && !super_ && bypass,
        "the definer role cannot log in and is no superuser"
    );
    // The throttle table is invisible to the server's role, even with no policy match needed.
    let pool = leadgen::db::connect_app(&db.app_url(), 1).await.unwrap();
    let e = sqlx::query("SELECT count(*) FROM app.auth_throttle")
        .fetch_one(&pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
}

/// A connection handed back inside a transaction sqlx does not know about (what a request
/// cancelled during `BEGIN` leaves) is closed, never lent to the next request.
#[tokio::test]
async fn a_connection_returned_inside_a_transaction_is_not_reused() {
    let db = crate::helpers::TestDb::new().await;
    let pool = leadgen::db::connect_app(&db.app_url(), 1).await.unwrap();
    {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("BEGIN; SELECT set_config('app.org_id', gen_random_uuid()::text, true)")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    // The one connection of the pool goes back (and is checked) in the background.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // (A bare string goes as one simple-protocol query, where both timestamps are the same
    // outside a transaction block.)
    let row = sqlx::Executor::fetch_one(
        &pool,
        "SELECT transaction_timestamp() <> statement_timestamp(), nullif(current_setting('app.org_id', true), '')",
    )
    .await
    .unwrap();
    use sqlx::Row as _;
    let in_tx: bool = row.try_get(0).unwrap();
    let org: Option<String> = row.try_get(1).unwrap();
    assert!(
        !in_tx,
        "the next borrower is not inside the stale transaction"
    );
    assert_eq!(org, None, "and does not inherit its tenant setting");
    pool.close().await;
}

#[tokio::test]
async fn every_column_of_every_table_is_classified() {
    let db = TestDb::new().await;
    let pool = PgPool::connect(&db.migrate_url()).await.unwrap();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'app' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(columns.len() > 100);
    let unclassified: Vec<String> = columns
        .iter()
        .filter(|(t, c)| leadgen::classification::class_of(t, c).is_none())
        .map(|(t, c)| format!("app.{t}.{c}"))
        .collect();
    assert!(
        unclassified.is_empty(),
        "classify these columns in crates/server/src/classification.rs: {unclassified:?}"
    );
    // And the registry names nothing that does not exist.
    for (table, cols) in leadgen::classification::REGISTRY {
        for (col, _) in *cols {
            assert!(
                columns.iter().any(|(t, c)| t == table && c == col),
                "the registry classifies app.{table}.{col}, which does not exist"
            );
        }
    }
    // Secrets are restricted; lead contact fields are at least confidential.
    use leadgen::classification::{Class, class_of};
    assert_eq!(
        class_of("credentials", "password_hash"),
        Some(Class::Restricted)
    );
    assert_eq!(class_of("data_keys", "wrapped"), Some(Class::Restricted));
    assert_eq!(class_of("leads", "email_ct"), Some(Class::Confidential));
    pool.close().await;
}
