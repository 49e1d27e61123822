//! Organizations and access control: membership and roles, the permission matrix enforced by
//! extractors and by row-level security, and the tamper-evident audit trail.

pub mod api;
pub mod api_keys;
pub mod audit;
pub mod groups;
pub mod invitations;
pub mod pages;
pub mod permissions;

pub use permissions::{Member, Permission, Require, perm};

/// Times in API answers: RFC 3339, UTC.
pub(crate) fn ts(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
