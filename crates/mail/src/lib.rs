//! LeadGen's campaign mail, as pure functions.
//!
//! Everything a campaign needs between the author's template and the bytes handed to an SMTP
//! relay, and back from the bounces and complaints it returns, without I/O: so every rule is
//! unit tested, and the server keeps sockets, queues and the database to itself.
//!
//! - [`template`]: merge fields (`{{ first_name | default: "there" }}`), checked on save.
//! - [`html`]: sanitizing authored HTML and deriving the plain-text alternative.
//! - [`message`]: the RFC 5322/MIME message, deterministic for a given input.
//! - [`dkim`]: DKIM signatures (RFC 6376, RFC 8463) on `ring`.
//! - [`bounce`]: delivery status notifications (RFC 3464) and feedback reports (RFC 5965).

pub mod bounce;
pub mod dkim;
pub mod html;
pub mod message;
pub mod template;
