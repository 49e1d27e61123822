//! Organizations and access control: membership and roles, the permission matrix enforced by
//! extractors and by row-level security, invitations, ACL groups and API keys.

pub mod api;
pub mod api_keys;
pub mod groups;
pub mod invitations;
pub mod pages;
pub mod permissions;

pub use permissions::{Member, Permission, Require, perm};
