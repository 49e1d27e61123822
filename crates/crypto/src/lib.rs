//! LeadGen's cryptography and secret-handling primitives.
//!
//! Pure code without I/O, so every rule here is unit tested and benchmarked on its own.
//! It holds the redaction of personal data and secrets in text, which the server's log writer
//! applies to every line, password hashing and policy, and HS256 access tokens with a key ring.
//! Field encryption and API-key formats join it with the capabilities that need them.

pub mod apikey;
pub mod field;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod redact;
pub mod seal;
pub mod totp;
