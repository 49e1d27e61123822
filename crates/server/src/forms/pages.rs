//! The forms pages (placeholder until the pages land).
use axum::Router;

use super::FormsState;

pub fn routes() -> Router<FormsState> {
    Router::new()
}
