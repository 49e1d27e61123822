//! LeadGen's integration tests: one binary, each test with its own database and server.
//!
//! Tests talk to a real PostgreSQL (`LEADGEN_TEST_PG`, default postgres://postgres@127.0.0.1:5432,
//! which the project's test script starts when it is not running) and, for the browser test, a
//! real Chromium. A missing service is a failure, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod campaign_pages;
mod campaigns;
mod claims;
mod companies;
mod config;
mod credentials;
mod e2e;
mod forms;
mod fuzz;
mod helpers;
mod http;
mod imports;
mod incidents;
mod leads;
mod lifecycle;
mod ops;
mod orgs;
mod pci;
mod perimeter;
mod privacy;
mod public;
mod retention;
mod rls;
mod sso;
mod structure;
mod telemetry;
mod tls;
mod vdp;
