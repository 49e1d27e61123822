//! The pages of the public site: the landing page, `/security`, `/privacy` and `/terms`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::PublicState;
use super::claims::{self, Claim, Status};
use crate::http::AppError;
use crate::web::assets::{self, Assets};
use crate::web::trap;

pub(super) fn html(t: &impl Template, status: StatusCode) -> Response {
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => AppError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

/// What the early-access form shows: the signed stamp, and what the visitor typed when a field
/// needs correcting.
#[derive(Default)]
pub(super) struct EarlyAccessForm {
    pub stamp: String,
    pub email: String,
    pub name: String,
    pub company: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "landing.html")]
pub(super) struct Landing<'a> {
    pub assets: &'a Assets,
    pub version: &'static str,
    pub early_access: Option<EarlyAccessForm>,
    pub honeypot: &'static str,
    pub stamp_field: &'static str,
}

/// The landing page, with a fresh stamp in its early-access form.
pub async fn landing(State(state): State<PublicState>) -> Response {
    let form = state.config.public.early_access.then(|| EarlyAccessForm {
        stamp: trap::stamp(
            &state.app_key,
            super::early_access::PURPOSE,
            state.clock.now(),
        ),
        ..EarlyAccessForm::default()
    });
    html(&landing_page(&state, form), StatusCode::OK)
}

pub(super) fn landing_page(state: &PublicState, form: Option<EarlyAccessForm>) -> Landing<'static> {
    Landing {
        assets: assets::get(),
        version: state.version,
        early_access: form,
        honeypot: trap::HONEYPOT_FIELD,
        stamp_field: trap::STAMP_FIELD,
    }
}

/// The claims of one `###` section of the claims file.
struct Section<'a> {
    name: &'a str,
    proven: Vec<&'a Claim>,
}

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    sections: Vec<Section<'a>>,
    proven: usize,
    not_yet: Vec<&'a Claim>,
}

/// `/security`: every proven claim, with the test that proves it, in the order of the claims
/// file; the claims that are planned or a matter of process apart, never as promises.
pub async fn security(State(state): State<PublicState>) -> Response {
    let all = claims::all();
    let mut sections: Vec<Section<'_>> = Vec::new();
    for c in all.iter().filter(|c| c.status == Status::Proven) {
        match sections.last_mut() {
            Some(s) if s.name == c.section => s.proven.push(c),
            _ => sections.push(Section {
                name: &c.section,
                proven: vec![c],
            }),
        }
    }
    let page = SecurityPage {
        assets: assets::get(),
        version: state.version,
        proven: sections.iter().map(|s| s.proven.len()).sum(),
        sections,
        not_yet: all.iter().filter(|c| c.status != Status::Proven).collect(),
    };
    html(&page, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "legal.html")]
struct LegalPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    title: &'a str,
    body_html: &'a str,
}

pub async fn privacy(State(state): State<PublicState>) -> Response {
    let page = LegalPage {
        assets: assets::get(),
        version: state.version,
        title: "Privacy policy",
        body_html: &state.privacy_html,
    };
    html(&page, StatusCode::OK)
}

pub async fn terms(State(state): State<PublicState>) -> Response {
    let page = LegalPage {
        assets: assets::get(),
        version: state.version,
        title: "Terms of service",
        body_html: &state.terms_html,
    };
    html(&page, StatusCode::OK)
}
