//! Capture forms: forms an organization embeds on its own websites. A member designs the form
//! (fields mapped to lead fields, consent text and its version, a CCPA notice, the thank-you
//! message or redirect, the origins allowed to post), gets an embed snippet (a plain HTML form
//! that works without JavaScript, plus an optional first-party script), and each accepted
//! submission becomes a lead of the organization with its consent recorded.
//!
//! - `model`: the form's definition as a client writes it, checked; the embed snippet.
//! - `api`: `/api/v1/forms`, the services the pages call too.
//! - `public`: `/f/{key}` and its stamp and script, the only routes anyone may call.
//! - `submit`: what an accepted submission does to the organization's leads.
//! - `pages`: `/forms` and `/forms/{id}`.

pub mod api;
pub mod model;
pub mod pages;
pub mod public;
pub mod submit;

use crate::leads::FieldKeys;
use crate::state::Core;

/// What the forms slice's routes use.
#[derive(Clone)]
pub struct FormsState {
    pub core: Core,
    /// Submissions are leads: their contact fields are encrypted and indexed with these keys.
    pub fields: FieldKeys,
}

crate::slice_state!(FormsState);
