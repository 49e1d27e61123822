//! Identity: accounts, passwords, sessions and access tokens, with Supabase Auth's HTTP shapes
//! under `/auth/v1` so the official Supabase clients work against LeadGen.
//!
//! Built so far: sign-up with email confirmation through the mailer, password sign-in (same
//! answer for an unknown email and a wrong password, progressive throttling), HS256 access tokens checked against a live
//! session on every request, rotating refresh tokens with a reuse grace window and reuse
//! detection, the user endpoint, scoped logout, and TOTP factors that raise a session to `aal2`.
//! Recovery codes, account pages with cookie sessions, single sign-on with Google and LinkedIn
//! ([`sso`]), and mailed sign-in links and codes, reauthentication nonces and the PKCE flow
//! ([`passwordless`]).

pub mod api;
pub mod deletion;
pub mod error;
pub mod mfa;
pub mod pages;
pub mod passwordless;
pub mod principal;
pub mod recovery;
pub mod service;
pub mod shell;
pub mod sso;
pub mod throttle;
pub mod tokens;

use std::sync::Arc;

use crate::perimeter::Perimeter;
use crate::state::Core;

pub use error::AuthError;
pub use principal::{AuthUser, Verified, authenticate};
pub use shell::shell;
pub use tokens::AuthKeys;

/// What the identity slice's routes, layers and workers use.
#[derive(Clone)]
pub struct AuthState {
    pub core: Core,
    /// The access-token key ring and the keys derived from the application key.
    pub auth: Arc<AuthKeys>,
    /// The single sign-on providers configured (none by default).
    pub sso: Arc<sso::Sso>,
    /// Failed sign-ins lower the client address's reputation.
    pub perimeter: Perimeter,
}

crate::slice_state!(AuthState);

/// A signed-in browser (pages), or the sign-in page.
pub type BrowserUser = crate::web::SignedIn<AuthUser>;

/// An email address, trimmed and lower-cased, with a plausible shape. Deliverability is proven by
/// the confirmation mail, not by parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let e = raw.trim().to_lowercase();
        let Some((local, domain)) = e.rsplit_once('@') else {
            return Err(AuthError::InvalidEmail);
        };
        let ok = !local.is_empty()
            && local.len() <= 64
            && domain.len() >= 3
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && e.len() <= 320
            && !e.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';')
            })
            && !local.contains('@');
        if ok {
            Ok(Self(e))
        } else {
            Err(AuthError::InvalidEmail)
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[must_use]
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::EmailAddress;

    #[test]
    fn emails_are_normalised_and_junk_refused() {
        assert_eq!(
            EmailAddress::parse("  Jane.Doe@Acme.IO ").unwrap().as_str(),
            "jane.doe@acme.io"
        );
        for bad in [
            "",
            "jane",
            "@acme.io",
            "jane@",
            "jane@acme",
            "jane doe@acme.io",
            "a@b@c.io",
            "x@.io",
            "<x@y.io>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
