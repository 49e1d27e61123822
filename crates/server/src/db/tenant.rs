//! Tenant scope for every query: a transaction that carries who is asking.
//!
//! [`TenantTx::begin`] opens a transaction and sets `app.org_id`, `app.user_id`, `app.role` and
//! `app.aal` with `set_config(…, true)`, so the settings die with the transaction and never leak
//! to the next user of a pooled connection. Row-level security policies read them; without them a
//! query sees no tenant rows at all.

use std::ops::{Deref, DerefMut};

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A member's role in an organization (Security Policy, Authorization Framework).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Manager,
    User,
    Api,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::User, Role::Api];

    /// The role stored in `app.memberships.role`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::User => "user",
            Self::Api => "api",
        }
    }
}

/// Authenticator assurance level of the session (aal2 = second factor verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aal {
    Aal1,
    Aal2,
}

impl Aal {
    #[must_use]
    pub fn parse(s: &str) -> Self {
        if s == "aal2" { Self::Aal2 } else { Self::Aal1 }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aal1 => "aal1",
            Self::Aal2 => "aal2",
        }
    }
}

/// Who is asking, as established by authentication. Built by extractors, never from request data.
#[derive(Debug, Clone, Copy)]
pub struct TenantContext {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub aal: Aal,
}

/// A transaction scoped to one organization and principal.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    context: TenantContext,
}

impl TenantTx {
    /// Begins a transaction and binds it to `context`.
    pub async fn begin(pool: &PgPool, context: TenantContext) -> Result<Self, sqlx::Error> {
        // One round trip for the BEGIN and the settings (this runs for every request that
        // touches tenant data). The values are written into the statement, which is safe only
        // because each has a fixed alphabet: two UUIDs (hex digits and dashes, as `Uuid`
        // prints them) and two names from closed enums; nothing here comes from a request.
        let tx = pool
            .begin_with(format!(
                "BEGIN; SELECT set_config('app.org_id', '{}', true), \
                 set_config('app.user_id', '{}', true), set_config('app.role', '{}', true), \
                 set_config('app.aal', '{}', true)",
                context.org_id.hyphenated(),
                context.user_id.hyphenated(),
                context.role.as_str(),
                context.aal.as_str()
            ))
            .await?;
        Ok(Self { tx, context })
    }

    #[must_use]
    pub fn context(&self) -> TenantContext {
        self.context
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for TenantTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// A transaction scoped to one user and no organization: account, session and credential
/// tables, whose policies key on `app.user_id`.
pub struct UserTx {
    tx: Transaction<'static, Postgres>,
}

impl UserTx {
    /// Continues this transaction in an organization the user has just joined or created, so the
    /// change and its audit record commit together. `context.user_id` must be this user.
    pub async fn into_tenant(mut self, context: TenantContext) -> Result<TenantTx, sqlx::Error> {
        sqlx::query(
            "SELECT set_config('app.org_id', $1, true), set_config('app.role', $2, true), \
                    set_config('app.aal', $3, true) \
             WHERE current_setting('app.user_id', true) = $4",
        )
        .bind(context.org_id.to_string())
        .bind(context.role.as_str())
        .bind(context.aal.as_str())
        .bind(context.user_id.to_string())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(TenantTx {
            tx: self.tx,
            context,
        })
    }

    pub async fn begin(pool: &PgPool, user_id: Uuid) -> Result<Self, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('app.user_id', $1, true)")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx })
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for UserTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for UserTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
