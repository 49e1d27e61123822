//! Leads: the records customers pay for and attackers want. Contact fields are encrypted with the
//! organization and row bound into each ciphertext; row-level security applies the organization
//! and each lead's ACL to every read, search, count and export.

pub mod api;
pub mod export;
pub mod export_jobs;
pub mod import;
pub mod keys;
pub mod lists;
pub mod merge;
pub mod model;
pub mod pages;
pub mod repo;
pub mod rotate;
pub mod scoring;
pub mod search;
pub mod segments;
pub mod synthetic;
pub mod timeline;

pub use keys::FieldKeys;
