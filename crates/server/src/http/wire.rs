//! How values look on the API's wire, in one place: times are RFC 3339 in UTC, and JSON a handler
//! kept as a value (to name the fields it changed) is read into a type with the field's path in
//! the error, as [`ApiJson`](super::error::ApiJson) does for a whole body.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppError;

/// A value that does not fit its type, with the path of the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidField(pub String);

impl From<InvalidField> for AppError {
    fn from(e: InvalidField) -> Self {
        Self::BadRequest(e.0)
    }
}

/// A time in an API answer: RFC 3339, UTC.
#[must_use]
pub fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A typed input from JSON that was kept as a value; a mismatch names the field
/// (`fields.email: invalid type…`), a 400 once it reaches a handler.
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, InvalidField> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        InvalidField(if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        })
    })
}
