//! Single sign-on with Google and LinkedIn over OpenID Connect: the relying party's half.
//!
//! The flow is the authorization code flow with PKCE (S256), `state` and `nonce`, all three kept
//! in a sealed, short-lived `__Host-` cookie of the browser that started the sign-in. The redirect
//! URI is fixed by configuration (`<site_url>/login/sso/<provider>/callback`) and sent verbatim.
//! The provider's metadata must name exactly the configured issuer; ID tokens are verified against
//! its JWKS by [`leadgen_crypto::oidc`] (RS256 only, issuer, audience, authorized party, expiry,
//! nonce). Keys are re-fetched when a token names an unknown `kid`, at most every 30 seconds.
//!
//! We implement this half ourselves rather than take a general OAuth/OIDC crate: two providers,
//! one algorithm and one flow need a few hundred lines, and every check stays visible here.

pub mod pages;
pub mod service;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use leadgen_crypto::oidc::{self, IdClaims, IdTokenError, Jwks};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::{Config, ConfigError, Profile, SsoProviderConfig};

/// Metadata older than this is fetched again before the next sign-in.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Least time between two JWKS fetches prompted by an unknown key id.
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Google,
    Linkedin,
}

impl ProviderKind {
    #[must_use]
    pub fn slug(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Linkedin => "linkedin",
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Linkedin => "LinkedIn",
        }
    }

    #[must_use]
    pub fn from_slug(s: &str) -> Option<Self> {
        match s {
            "google" => Some(Self::Google),
            "linkedin" => Some(Self::Linkedin),
            _ => None,
        }
    }
}

/// Why a single sign-on attempt failed. Each is shown to the user in plain words and counted.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("this sign-in link has expired or was opened in another browser; start again")]
    State,
    #[error("{0} declined the sign-in: {1}")]
    Denied(&'static str, String),
    #[error("{0} answered for another issuer")]
    IssuerMismatch(&'static str),
    #[error("{0} could not be reached or gave an unusable answer: {1}")]
    Provider(&'static str, String),
    #[error("{0} refused the sign-in code: {1}")]
    Exchange(&'static str, String),
    #[error("{0} sent an identity LeadGen cannot trust: {1}")]
    IdToken(&'static str, IdTokenError),
    #[error(
        "{0} has not verified the email address of this account, so it cannot sign in to LeadGen"
    )]
    EmailNotVerified(&'static str),
    #[error(
        "an account with this email address exists but is not confirmed yet; confirm it or reset its password first"
    )]
    AccountUnconfirmed,
    #[error("{0}")]
    Auth(#[from] super::AuthError),
}

impl SsoError {
    /// A short label for metrics and the audit log.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Denied(..) => "denied",
            Self::IssuerMismatch(_) => "issuer",
            Self::Provider(..) => "provider",
            Self::Exchange(..) => "exchange",
            Self::IdToken(_, e) => match e {
                IdTokenError::Nonce => "nonce",
                IdTokenError::Issuer(_) => "issuer",
                IdTokenError::Audience => "audience",
                IdTokenError::Signature | IdTokenError::UnknownKey => "signature",
                _ => "id_token",
            },
            Self::EmailNotVerified(_) => "email_not_verified",
            Self::AccountUnconfirmed => "account_unconfirmed",
            Self::Auth(_) => "auth",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

struct Discovered {
    meta: Metadata,
    jwks: Jwks,
    fetched_at: Instant,
    jwks_fetched_at: Instant,
}

/// One configured provider.
pub struct Provider {
    pub kind: ProviderKind,
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: String,
    http: reqwest::Client,
    cache: Mutex<Option<Arc<Discovered>>>,
}

/// The secrets of one authorization request; they travel in the sealed flow cookie.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

fn random_b64(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    B64.encode(b)
}

/// Whether a URL points at this machine (loopback literal or `localhost`).
#[must_use]
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Provider {
    fn new(kind: ProviderKind, c: &SsoProviderConfig, site_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Endpoints come from the issuer's metadata; a redirect would leave the checked URL.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("LeadGen/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            kind,
            issuer: c.issuer.clone(),
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.clone(),
            redirect_uri: format!("{site_url}/login/sso/{}/callback", kind.slug()),
            http,
            cache: Mutex::new(None),
        })
    }

    fn err(&self, reason: impl std::fmt::Display) -> SsoError {
        SsoError::Provider(self.kind.label(), reason.to_string())
    }

    /// An endpoint from the metadata must be https, or http on loopback when the issuer is too.
    fn check_endpoint(&self, what: &str, raw: &str) -> Result<(), SsoError> {
        let url = url::Url::parse(raw).map_err(|e| self.err(format!("{what}: {e}")))?;
        let issuer_plain = self.issuer.starts_with("http://");
        let ok = url.scheme() == "https"
            || (issuer_plain && url.scheme() == "http" && is_loopback(&url));
        if ok {
            Ok(())
        } else {
            Err(self.err(format!("{what} must use https")))
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, SsoError> {
        let res = self.http.get(url).send().await.map_err(|e| self.err(e))?;
        if !res.status().is_success() {
            return Err(self.err(format!("{url} answered {}", res.status())));
        }
        res.json()
            .await
            .map_err(|e| self.err(format!("{url}: {e}")))
    }

    async fn fetch_jwks(&self, meta: &Metadata) -> Result<Jwks, SsoError> {
        self.get_json(&meta.jwks_uri).await
    }

    async fn discover(&self) -> Result<Arc<Discovered>, SsoError> {
        let mut cache = self.cache.lock().await;
        if let Some(d) = cache
            .as_ref()
            .filter(|d| d.fetched_at.elapsed() < METADATA_TTL)
        {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let meta: Metadata = self.get_json(&url).await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
        if meta.issuer != self.issuer {
            tracing::warn!(provider = self.kind.slug(), configured = %self.issuer, announced = %meta.issuer, "provider metadata names another issuer");
            return Err(SsoError::IssuerMismatch(self.kind.label()));
        }
        self.check_endpoint("authorization_endpoint", &meta.authorization_endpoint)?;
        self.check_endpoint("token_endpoint", &meta.token_endpoint)?;
        self.check_endpoint("jwks_uri", &meta.jwks_uri)?;
        if !meta
            .id_token_signing_alg_values_supported
            .iter()
            .any(|a| a == oidc::RS256)
        {
            return Err(self.err("the provider does not sign ID tokens with RS256"));
        }
        let jwks = self.fetch_jwks(&meta).await?;
        let now = Instant::now();
        let d = Arc::new(Discovered {
            meta,
            jwks,
            fetched_at: now,
            jwks_fetched_at: now,
        });
        *cache = Some(d.clone());
        Ok(d)
    }

    /// Starts a sign-in: the provider URL to send the browser to, and the secrets to keep.
    pub async fn authorize(&self) -> Result<Authorization, SsoError> {
        let d = self.discover().await?;
        let state = random_b64(32);
        let nonce = random_b64(32);
        let verifier = random_b64(32);
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = url::Url::parse(&d.meta.authorization_endpoint).map_err(|e| self.err(e))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(Authorization {
            url: url.into(),
            state,
            nonce,
            verifier,
        })
    }

    /// Exchanges the code for tokens and verifies the ID token.
    pub async fn finish(
        &self,
        code: &str,
        returned_iss: Option<&str>,
        verifier: &str,
        nonce: &str,
        now: i64,
    ) -> Result<IdClaims, SsoError> {
        let d = self.discover().await?;
        // RFC 9207: a provider that names itself in the response must name the issuer we asked.
        if returned_iss.is_some_and(|iss| iss != self.issuer) {
            return Err(SsoError::IssuerMismatch(self.kind.label()));
        }
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut req = self.http.post(&d.meta.token_endpoint);
        // client_secret_basic unless the provider only takes client_secret_post (LinkedIn).
        let basic = d
            .meta
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == "client_secret_basic"));
        if basic {
            req = req.basic_auth(
                form_encode(&self.client_id),
                Some(form_encode(self.client_secret.expose_secret())),
            );
        } else {
            form.push(("client_id", self.client_id.as_str()));
            form.push(("client_secret", self.client_secret.expose_secret()));
        }
        let res = req
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| self.err(e))?;
        let status = res.status();
        let body: serde_json::Value = res.json().await.map_err(|e| self.err(e))?;
        if !status.is_success() {
            let reason = body["error_description"]
                .as_str()
                .or_else(|| body["error"].as_str())
                .unwrap_or("no reason given");
            return Err(SsoError::Exchange(
                self.kind.label(),
                reason.chars().take(200).collect(),
            ));
        }
        let id_token = body["id_token"]
            .as_str()
            .ok_or_else(|| self.err("the token response has no id_token"))?;
        let expect = oidc::Expect {
            issuer: &self.issuer,
            client_id: &self.client_id,
            nonce,
            now,
        };
        match oidc::verify_id_token(id_token, &d.jwks, &expect) {
            Err(IdTokenError::UnknownKey) if d.jwks_fetched_at.elapsed() >= JWKS_REFETCH_MIN => {
                // The provider may have rotated its keys since we fetched them.
                let jwks = self.fetch_jwks(&d.meta).await?;
                let fresh = Arc::new(Discovered {
                    meta: d.meta.clone(),
                    jwks,
                    fetched_at: d.fetched_at,
                    jwks_fetched_at: Instant::now(),
                });
                *self.cache.lock().await = Some(fresh.clone());
                oidc::verify_id_token(id_token, &fresh.jwks, &expect)
                    .map_err(|e| SsoError::IdToken(self.kind.label(), e))
            }
            other => other.map_err(|e| SsoError::IdToken(self.kind.label(), e)),
        }
    }
}

/// RFC 6749 §2.3.1: client credentials in HTTP Basic are form-encoded first.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The configured providers, in the order the sign-in page shows them.
#[derive(Default)]
pub struct Sso {
    providers: Vec<Provider>,
}

impl Sso {
    /// Checks each enabled provider's issuer: an https URL without query or fragment; plain
    /// http only for a provider on the operator's own machine (loopback) outside production.
    pub fn check(config: &Config) -> Result<(), ConfigError> {
        for (kind, c) in [
            (ProviderKind::Google, &config.sso.google),
            (ProviderKind::Linkedin, &config.sso.linkedin),
        ] {
            if c.enabled() {
                check_issuer(&c.issuer, config.profile).map_err(|reason| ConfigError::Rule {
                    path: format!("sso.{}.issuer", kind.slug()),
                    reason,
                })?;
            }
        }
        Ok(())
    }

    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Self::check(config)?;
        let site = config.site_url();
        let mut providers = Vec::new();
        for (kind, c) in [
            (ProviderKind::Google, &config.sso.google),
            (ProviderKind::Linkedin, &config.sso.linkedin),
        ] {
            if c.enabled() {
                providers.push(Provider::new(kind, c, &site)?);
            }
        }
        Ok(Self { providers })
    }

    #[must_use]
    pub fn get(&self, slug: &str) -> Option<&Provider> {
        let kind = ProviderKind::from_slug(slug)?;
        self.providers.iter().find(|p| p.kind == kind)
    }

    /// (slug, label) of each configured provider.
    #[must_use]
    pub fn offered(&self) -> Vec<(&'static str, &'static str)> {
        self.providers
            .iter()
            .map(|p| (p.kind.slug(), p.kind.label()))
            .collect()
    }
}

fn check_issuer(issuer: &str, profile: Profile) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() || url.host_str().is_none() {
        return Err("must be a URL without query or fragment".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if profile != Profile::Production && is_loopback(&url) => Ok(()),
        _ => Err("must use https (http only for a loopback provider outside production)".into()),
    }
}
