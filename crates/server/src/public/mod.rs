//! The public site: the landing page with the early-access form, the `/security` page that shows
//! exactly the claims our tests prove, and the privacy policy and terms the operator supplies.
//!
//! Every page is rendered on the server from LeadGen's own templates and assets: no script,
//! style, font or image from another origin, which the Content-Security-Policy enforces and
//! `it::public` checks page by page.

pub mod claims;
pub mod early_access;
pub mod markdown;
pub mod site;
pub mod vdp;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::config::Config;
use crate::state::Core;

/// What the public pages use: the core, and the legal pages rendered once at start.
#[derive(Clone)]
pub struct PublicState {
    pub core: Core,
    /// Seals the attachments of vulnerability reports.
    pub fields: crate::leads::FieldKeys,
    /// Where the untriaged-report alert goes out.
    pub perimeter: crate::perimeter::Perimeter,
    pub privacy_html: Arc<str>,
    pub terms_html: Arc<str>,
}

crate::slice_state!(PublicState);

/// The shipped privacy policy and terms, replaced by the operator's files when configured.
const DEFAULT_PRIVACY: &str = include_str!("../../../../config/privacy.md");
const DEFAULT_TERMS: &str = include_str!("../../../../config/terms.md");

/// Reads the Markdown of a legal page: the configured file, or the shipped default.
fn legal_source(path: &std::path::Path, default: &str, key: &str) -> anyhow::Result<String> {
    if path.as_os_str().is_empty() {
        return Ok(default.to_string());
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("public.{key} ({}): {e}", path.display()))
}

impl PublicState {
    /// Renders the legal pages; a configured file that cannot be read stops the start.
    pub fn new(
        core: Core,
        fields: crate::leads::FieldKeys,
        perimeter: crate::perimeter::Perimeter,
    ) -> anyhow::Result<Self> {
        let privacy = legal_source(
            &core.config.public.privacy_path,
            DEFAULT_PRIVACY,
            "privacy_path",
        )?;
        let terms = legal_source(&core.config.public.terms_path, DEFAULT_TERMS, "terms_path")?;
        Ok(Self {
            privacy_html: markdown::to_html(&privacy).into(),
            terms_html: markdown::to_html(&terms).into(),
            core,
            fields,
            perimeter,
        })
    }
}

/// Checks for `configtest` and the start: the legal pages' files are readable.
pub fn check(config: &Config) -> Result<(), crate::config::ConfigError> {
    for (key, path) in [
        ("public.privacy_path", &config.public.privacy_path),
        ("public.terms_path", &config.public.terms_path),
    ] {
        if path.as_os_str().is_empty() {
            continue;
        }
        if let Err(e) = std::fs::read_to_string(path) {
            return Err(crate::config::ConfigError::Rule {
                path: key.into(),
                reason: format!("cannot read {}: {e}", path.display()),
            });
        }
    }
    vdp::security_txt::check(config, time::OffsetDateTime::now_utc())
}

pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/", get(site::landing))
        .route("/security", get(site::security))
        .route("/privacy", get(site::privacy))
        .route("/terms", get(site::terms))
        .route("/early-access", post(early_access::submit))
        .route(
            "/early-access/confirm/{token}",
            get(early_access::confirm_page).post(early_access::confirm),
        )
        .route(
            "/early-access/unsubscribe/{token}",
            get(early_access::unsubscribe_page).post(early_access::unsubscribe),
        )
        .route("/.well-known/security.txt", get(vdp::security_txt::serve))
        .route("/security.txt", get(vdp::security_txt::legacy))
        .route(
            "/security/disclosure",
            get(vdp::pages::policy)
                .post(vdp::pages::submit)
                // Attachments: the WAF's route rule for this path holds the real limit.
                .layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route("/security/reports/{token}", get(vdp::pages::status))
        .merge(vdp::api::operator_routes())
}
