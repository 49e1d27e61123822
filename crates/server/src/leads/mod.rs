//! Leads: the records customers pay for and attackers want. Contact fields are encrypted with the
//! organization and row bound into each ciphertext; row-level security applies the organization
//! and each lead's ACL to every read, search, count and export.

pub mod api;
pub mod error;
pub mod export;
pub mod export_jobs;
pub mod import;
pub mod keys;
pub mod lists;
pub mod lists_page;
pub mod merge;
pub mod model;
pub mod pages;
pub mod reads;
pub mod repo;
pub mod rotate;
pub mod scoring;
pub mod search;
pub mod segments;
pub mod synthetic;
pub mod timeline;

use std::sync::Arc;

use crate::state::Core;

pub use error::LeadsError;
pub use keys::FieldKeys;

/// What the leads slice's routes and workers use (companies too: a company's leads are leads).
#[derive(Clone)]
pub struct LeadsState {
    pub core: Core,
    /// The keys that encrypt lead fields and compute their blind indexes.
    pub fields: FieldKeys,
    /// This instance's name for the import jobs whose files its data folder holds.
    pub node: Arc<String>,
}

crate::slice_state!(LeadsState);
