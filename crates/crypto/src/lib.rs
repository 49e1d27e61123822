//! LeadGen's cryptography and secret-handling primitives.
//!
//! Pure code without I/O, so every rule here is unit tested and benchmarked on its own.
//! Today it holds the redaction of personal data and secrets in text, which the server's log
//! writer applies to every line; field encryption, token formats and key rings join it with the
//! capabilities that need them.

pub mod redact;
