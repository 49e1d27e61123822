//! Roles and the permission matrix (Security Policy, Authorization Framework §2), written once,
//! here, and enforced by the [`Require`] extractor on every route that needs a permission.
//!
//! Permissions that only the Admin column grants are *admin actions*: they also need a session at
//! assurance level `aal2` (a verified second factor). The database enforces the same rule on the
//! admin-only tables with restrictive row-level security policies (`app.is_admin_aal2()`), so a
//! route that forgot its extractor still cannot change them.
//!
//! The Security Policy also makes a second factor mandatory for "lead scoring, data exports, or
//! any critical system modifications", whatever the role: [`Permission::DataExport`] needs
//! `aal2` for everyone who holds it, scoring-model changes check [`critical`], and ACL changes are
//! admin actions already. The database guards exports and model changes too (a restrictive
//! policy on `app.export_jobs`, a trigger on `app.scoring_models`).

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::{Aal, Role, TenantContext};
use crate::http::credentials::Credential;
use crate::http::error::AppError;
use crate::http::middleware::PrincipalSlot;
use crate::state::Core;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    ManageOrganization,
    LeadSearchAndManagement,
    CampaignCreation,
    SystemSettings,
    DataExport,
    AnalyticsDashboard,
    ApiKeyGeneration,
}

/// The matrix: for each permission, whether Admin, Manager, User and API (in that order) hold it.
pub const MATRIX: [(Permission, [bool; 4]); 7] = [
    (Permission::ManageOrganization, [true, false, false, false]),
    (
        Permission::LeadSearchAndManagement,
        [true, true, true, true],
    ),
    (Permission::CampaignCreation, [true, true, true, true]),
    (Permission::SystemSettings, [true, false, false, false]),
    (Permission::DataExport, [true, true, false, false]),
    (Permission::AnalyticsDashboard, [true, true, true, false]),
    (Permission::ApiKeyGeneration, [true, false, false, false]),
];

fn column(role: Role) -> usize {
    match role {
        Role::Admin => 0,
        Role::Manager => 1,
        Role::User => 2,
        Role::Api => 3,
    }
}

impl Permission {
    pub const ALL: [Permission; 7] = [
        Permission::ManageOrganization,
        Permission::LeadSearchAndManagement,
        Permission::CampaignCreation,
        Permission::SystemSettings,
        Permission::DataExport,
        Permission::AnalyticsDashboard,
        Permission::ApiKeyGeneration,
    ];

    /// The name used in API-key scopes, e.g. `lead_search_and_management`.
    #[must_use]
    pub fn scope(self) -> &'static str {
        match self {
            Self::ManageOrganization => "manage_organization",
            Self::LeadSearchAndManagement => "lead_search_and_management",
            Self::CampaignCreation => "campaign_creation",
            Self::SystemSettings => "system_settings",
            Self::DataExport => "data_export",
            Self::AnalyticsDashboard => "analytics_dashboard",
            Self::ApiKeyGeneration => "api_key_generation",
        }
    }

    #[must_use]
    pub fn from_scope(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.scope() == s)
    }

    fn row(self) -> [bool; 4] {
        MATRIX
            .iter()
            .find(|(p, _)| *p == self)
            .map_or([false; 4], |(_, r)| *r)
    }

    /// Whether `role` holds this permission.
    #[must_use]
    pub fn allows(self, role: Role) -> bool {
        self.row()[column(role)]
    }

    /// Granted to Admin alone: an admin action, which needs `aal2`.
    #[must_use]
    pub fn admin_only(self) -> bool {
        self.row() == [true, false, false, false]
    }

    /// Needs a session verified with a second factor (`aal2`), whatever the role: admin actions,
    /// and data exports (Security Policy: MFA for "data exports").
    #[must_use]
    pub fn needs_aal2(self) -> bool {
        self.admin_only() || self == Self::DataExport
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::ManageOrganization => "Manage Organization",
            Self::LeadSearchAndManagement => "Lead Search & Management",
            Self::CampaignCreation => "Campaign Creation",
            Self::SystemSettings => "System Settings",
            Self::DataExport => "Data Export",
            Self::AnalyticsDashboard => "Analytics Dashboard",
            Self::ApiKeyGeneration => "API Key Generation",
        }
    }
}

/// Who acts in an organization: a signed-in member, or an API key of the organization.
#[derive(Debug, Clone)]
pub struct Member {
    /// The user, or for an API key the key's id (never a user's).
    pub principal_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub aal: Aal,
    /// Set when the request authenticated with an API key (whose id is `principal_id`).
    pub api_key: Option<ApiKeyPrincipal>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyPrincipal {
    pub scopes: Vec<Permission>,
}

impl Member {
    /// The tenant scope for this member's queries.
    #[must_use]
    pub fn context(&self) -> TenantContext {
        TenantContext {
            org_id: self.org_id,
            user_id: self.principal_id,
            role: self.role,
            aal: self.aal,
        }
    }
}

fn needs_mfa() -> AppError {
    AppError::Denied {
        code: "insufficient_aal",
        message: "this action needs a session verified with a second factor (aal2): \
                  set up an authenticator app and sign in with it"
            .into(),
    }
}

/// A critical operation (Security Policy: "MFA is mandatory for … lead scoring, data exports, or
/// any critical system modifications"): the member's session must be at `aal2`. API keys have no
/// second factor, so they never pass.
///
/// # Errors
/// 403 `insufficient_aal`.
pub fn critical(member: &Member) -> Result<(), AppError> {
    if member.aal == Aal::Aal2 {
        Ok(())
    } else {
        Err(needs_mfa())
    }
}

/// A signed-in member, or an API key of the organization: the credential is the one the
/// identity layer read at the edge.
impl<S> FromRequestParts<S> for Member
where
    S: Send + Sync,
    Core: FromRef<S>,
{
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        if let Some(Credential::ApiKey { key, .. }) = parts.extensions.get::<Credential>() {
            let key = key.clone();
            let ip = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            let member =
                super::api_keys::authenticate(&Core::from_ref(state), key.expose_secret(), ip)
                    .await
                    .map_err(IntoResponse::into_response)?;
            if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
                slot.set(format!("key:{}", member.principal_id));
            }
            return Ok(member);
        }
        let user = AuthUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Member::from_user(&user).map_err(IntoResponse::into_response)
    }
}

impl Member {
    /// The member a signed-in user is in their session's organization.
    pub fn from_user(user: &AuthUser) -> Result<Self, AppError> {
        let Some(org) = user.org else {
            return Err(AppError::Denied {
                code: "no_organization",
                message: "this session works in no organization: create one or switch to one"
                    .into(),
            });
        };
        let aal = Aal::parse(&user.aal);
        // An organization may require a second factor from every member.
        if org.require_mfa && aal != Aal::Aal2 {
            return Err(needs_mfa());
        }
        Ok(Self {
            principal_id: user.user_id,
            org_id: org.org_id,
            role: org.role,
            aal,
            api_key: None,
        })
    }
}

/// A permission as a type, for [`Require`].
pub trait PermissionMarker {
    const PERMISSION: Permission;
}

macro_rules! markers {
    ($($name:ident),* $(,)?) => {
        /// Marker types naming each permission, as in `Require<perm::ManageOrganization>`.
        pub mod perm {
            $(
                pub struct $name;
                impl super::PermissionMarker for $name {
                    const PERMISSION: super::Permission = super::Permission::$name;
                }
            )*
        }
    };
}
markers!(
    ManageOrganization,
    LeadSearchAndManagement,
    CampaignCreation,
    SystemSettings,
    DataExport,
    AnalyticsDashboard,
    ApiKeyGeneration,
);

/// A member whose role holds permission `P` (and, for admin actions, at `aal2`).
/// Anything else is a 403 with a code: `forbidden` or `insufficient_aal`.
pub struct Require<P>(pub Member, pub PhantomData<P>);

impl<S, P> FromRequestParts<S> for Require<P>
where
    S: Send + Sync,
    P: PermissionMarker + Send + Sync,
    Core: FromRef<S>,
{
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let member = Member::from_request_parts(parts, state).await?;
        check(&member, P::PERMISSION).map_err(IntoResponse::into_response)?;
        Ok(Self(member, PhantomData))
    }
}

/// The rule [`Require`] applies.
pub fn check(member: &Member, p: Permission) -> Result<(), AppError> {
    if !p.allows(member.role) {
        return Err(AppError::Denied {
            code: "forbidden",
            message: format!(
                "the {} role does not have the \"{}\" permission",
                member.role.as_str(),
                p.label()
            ),
        });
    }
    if let Some(key) = &member.api_key
        && !key.scopes.contains(&p)
    {
        return Err(AppError::Denied {
            code: "forbidden",
            message: format!("this API key's scopes do not include \"{}\"", p.label()),
        });
    }
    if p.needs_aal2() {
        critical(member)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_the_policy_table() {
        // Every permission appears exactly once.
        for (p, _) in MATRIX {
            assert_eq!(MATRIX.iter().filter(|(q, _)| *q == p).count(), 1);
        }
        let admin_only: Vec<_> = MATRIX
            .iter()
            .filter(|(p, _)| p.admin_only())
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(
            admin_only,
            [
                Permission::ManageOrganization,
                Permission::SystemSettings,
                Permission::ApiKeyGeneration
            ]
        );
        assert!(Permission::DataExport.allows(Role::Manager));
        assert!(!Permission::DataExport.allows(Role::User));
        assert!(!Permission::AnalyticsDashboard.allows(Role::Api));
    }
}
