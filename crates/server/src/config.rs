//! Configuration: layered sources merged into one typed, validated [`Config`].
//!
//! Every key lives in `config/default.toml` (built into the binary) with its comment, so the
//! defaults are the documentation. Each later layer may only set keys that exist there; an unknown
//! key, a value of the wrong type or a missing production secret is a [`ConfigError`] that names the
//! key path and where the bad value came from.
//!
//! This module checks the configuration's own shape and the rules between its keys. What a
//! slice makes of a value (the WAF and rate-limit files the `perimeter` paths name, the SSO
//! issuers) is checked by that slice; `startup::check` runs those checks for a start and for
//! `leadgen configtest`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use toml::Value;

pub use crate::mail::{MailConfig, MailTls};

/// The documented defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Environment variables with the `LEADGEN_` prefix that select sources rather than set keys.
const SOURCE_VARS: &[&str] = &["LEADGEN_CONFIG", "LEADGEN_ENV_FILE"];

/// A configuration problem, naming the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path}: unknown key (set in {origin}); see config/default.toml for the keys LeadGen knows"
    )]
    UnknownKey { path: String, origin: String },
    #[error("{path}: {reason} (set in {origin})")]
    Invalid {
        path: String,
        reason: String,
        origin: String,
    },
    #[error("{path}: {reason}")]
    Rule { path: String, reason: String },
    #[error("{origin}: {reason}")]
    Source { origin: String, reason: String },
}

impl ConfigError {
    /// The key path the error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::UnknownKey { path, .. }
            | Self::Invalid { path, .. }
            | Self::Rule { path, .. } => Some(path),
            Self::Source { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlainHttp {
    Redirect,
    Off,
    Serve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub profile: Profile,
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub http_headers: HeadersConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub sso: SsoConfig,
    pub api_keys: ApiKeysConfig,
    pub imports: ImportsConfig,
    pub perimeter: PerimeterConfig,
    pub telemetry: TelemetryConfig,
    pub secrets: SecretsConfig,
    pub demo: DemoConfig,
    pub mail: MailConfig,
    pub public: PublicConfig,
    pub campaigns: CampaignsConfig,
    pub vdp: VdpConfig,
    pub operators: OperatorsConfig,
    pub pci: PciConfig,
    pub retention: RetentionConfig,
    pub privacy: PrivacyConfig,
    pub backup: BackupConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: std::net::IpAddr,
    pub https_port: u16,
    pub http_port: u16,
    pub plain_http: PlainHttp,
    pub admin_port: u16,
    pub header_read_timeout_secs: u64,
    pub tls_handshake_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub min_version: TlsVersion,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub reload_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    pub hsts_max_age_secs: u64,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
    pub content_security_policy: String,
    pub referrer_policy: String,
    pub permissions_policy: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// May carry a password, so it is a secret.
    pub url: SecretString,
    pub migrate_url: SecretString,
    pub migrate_on_start: bool,
    pub max_connections: u32,
    pub postgres_bin_dir: PathBuf,
}

impl DatabaseConfig {
    /// Whether LeadGen runs its own private cluster (no URL configured).
    #[must_use]
    pub fn embedded(&self) -> bool {
        self.url.expose_secret().is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub site_url: String,
    pub audience: String,
    pub jwt_algorithms: Vec<String>,
    pub access_token_ttl_secs: i64,
    pub max_access_token_ttl_secs: i64,
    pub refresh_reuse_grace_secs: i64,
    pub session_lifetime_secs: i64,
    pub bcrypt_cost: u32,
    pub require_email_confirmation: bool,
    pub confirmation_ttl_secs: i64,
    pub recovery_ttl_secs: i64,
    /// URLs (by prefix) besides the site itself that sign-in flows may return to.
    #[serde(default)]
    pub redirect_urls: Vec<String>,
    /// Days between asking to delete an account and its deletion; signing in cancels it.
    pub account_deletion_grace_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    pub default_ttl_days: i64,
    pub max_ttl_days: i64,
    pub rotation_overlap_days: i64,
    pub notice_check_secs: u64,
}

/// The public site: the legal pages the operator supplies and the early-access list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// Markdown of `/privacy` and `/terms`; empty: the shipped defaults.
    pub privacy_path: PathBuf,
    pub terms_path: PathBuf,
    /// Whether the landing page offers the early-access form.
    pub early_access: bool,
    /// Seconds a person needs at least to fill the early-access form (the time trap).
    pub early_access_min_fill_secs: i64,
    /// Hours a confirmation link stays valid.
    pub early_access_confirm_ttl_hours: i64,
    /// Seconds before a repeated sign-up of a pending address mails its link again.
    pub early_access_resend_after_secs: i64,
}

/// Vulnerability disclosure: security.txt, the report form and the triage clock.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VdpConfig {
    /// Contact URIs of security.txt besides the report form.
    pub contacts: Vec<String>,
    pub languages: String,
    /// An operator-signed security.txt served as given; empty: generated.
    pub signed_path: PathBuf,
    pub max_attachments: usize,
    pub max_attachment_bytes: usize,
    pub triage_alert_hours: i64,
    pub check_secs: u64,
    pub disclosure_days: i64,
}

/// The platform's operators (above the organizations).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days an anonymised lead is kept before it is deleted.
    pub purge_after_days: u32,
    /// Leads per transaction.
    pub batch_size: u32,
    /// Days an import's uploaded file is kept after the import ended.
    pub import_upload_days: u32,
    /// Months the audit trail and the record of sign-ins (sessions) are kept.
    pub audit_months: u8,
}

/// Data-subject requests: how their deadlines are watched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Seconds between checks of open requests for reminders and alerts.
    pub request_check_secs: u64,
    /// Days before its deadline an open request raises the `subject-request-due` alert.
    pub request_alert_days: u32,
}

/// Backups with pgBackRest, and restore proofs (see `docs/operations.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Archive WAL continuously and allow `leadgen backup`; the embedded cluster is then started
    /// with archiving on.
    pub enabled: bool,
    /// The embedded cluster's repository; empty: `<data_dir>/backups/repo`.
    pub repo_path: PathBuf,
    /// Full backups kept (with their incrementals and the WAL between them).
    pub retention_full: u32,
    /// A WAL segment is archived at least this often, even when little is written.
    pub archive_timeout_secs: u32,
    /// The `pgbackrest` program; empty: found on `PATH`.
    pub pgbackrest_bin: PathBuf,
    /// An external PostgreSQL's pgBackRest configuration file and stanza, set up by the operator.
    pub external_config: PathBuf,
    pub external_stanza: String,
    /// The `backup-late` alert fires when the last full (or any) backup is older than this.
    pub max_full_age_hours: u32,
    pub max_incr_age_hours: u32,
    /// The port a restore proof's scratch cluster tries first (another is chosen when taken).
    pub verify_port: u16,
    /// Encrypted fields a restore proof decrypts.
    pub verify_sample: u32,
    /// The `backup-late` alert also fires when the last restore proof is older than this.
    pub proof_max_age_days: u32,
    /// Seconds between the server's checks of backup status (metrics and alert).
    pub check_secs: u64,
}

impl BackupConfig {
    /// Whether backups go through an operator-provided stanza rather than LeadGen's own.
    #[must_use]
    pub fn external(&self) -> bool {
        !self.external_config.as_os_str().is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciConfig {
    /// Log files, or directories of them, that `leadgen pci scan` reads for card numbers.
    pub log_paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorsConfig {
    /// Bearer token of the operators' API; empty: off.
    pub api_token: SecretString,
    /// An operator console session ends after this long without a request…
    pub session_idle_secs: u32,
    /// …and this long after sign-in whatever happens.
    pub session_max_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignsConfig {
    pub batch: u32,
    pub lease_secs: u32,
    pub max_attempts: u32,
    pub retry_base_secs: u32,
    pub poll_ms: u64,
    pub max_per_hour: u32,
    pub max_per_day: u32,
    pub max_per_domain_minute: u32,
    pub soft_bounce_limit: u32,
    pub approval_default: bool,
    pub report_secret: SecretString,
    pub report_maildir: PathBuf,
    pub unsubscribe_domain: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportsConfig {
    /// Leads written per transaction (and per checkpoint).
    pub batch_rows: usize,
    /// How long a worker holds a job between checkpoints before another may take it over.
    pub lease_secs: u32,
    /// How often an idle worker looks for a job.
    pub poll_ms: u64,
    /// Rows shown in an upload's preview.
    pub preview_rows: usize,
    /// How long an export job's download link works, from the export's start; its file is
    /// deleted after that.
    pub export_link_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerimeterConfig {
    pub waf_rules_path: PathBuf,
    pub rate_limits_path: PathBuf,
    /// May carry a password, so it is a secret.
    pub redis_url: SecretString,
    pub redis_prefix: String,
}

/// Single sign-on providers. A provider is on when it has a client id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    pub google: SsoProviderConfig,
    pub linkedin: SsoProviderConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoProviderConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl SsoProviderConfig {
    #[must_use]
    pub fn enabled(&self) -> bool {
        !self.client_id.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    pub app_key: SecretString,
    /// Wraps the data-encryption keys of lead fields (32 bytes as hex or base64).
    pub master_key: SecretString,
    /// The key store of per-organization data keys; empty means `<data_dir>/secrets/org-keys`.
    pub org_key_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub create_on_start: bool,
}

/// Where the configuration comes from. Tests build one of these instead of touching the process
/// environment, so they run in parallel.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Operator TOML file layered over the defaults.
    pub config_file: Option<PathBuf>,
    /// Environment file with `LEADGEN_…=value` lines.
    pub env_file: Option<PathBuf>,
    /// Environment variables (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// Command-line overrides as (key path, value).
    pub overrides: Vec<(String, Value)>,
}

impl Sources {
    /// Sources from the process environment, with the config and env files it names.
    #[must_use]
    pub fn from_process_env() -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| PathBuf::from(v))
        };
        Self {
            config_file: lookup("LEADGEN_CONFIG"),
            env_file: lookup("LEADGEN_ENV_FILE"),
            env,
            overrides: Vec::new(),
        }
    }
}

impl Config {
    /// Merges all layers, deserialises and checks the rules that span keys.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let defaults: Value = toml::from_str(DEFAULT_TOML).map_err(|e| ConfigError::Source {
            origin: "built-in defaults".into(),
            reason: e.to_string(),
        })?;
        let mut merged = defaults.clone();

        if let Some(path) = &sources.config_file {
            let source = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Source {
                origin: source.clone(),
                reason: e.to_string(),
            })?;
            let layer: Value = toml::from_str(&text).map_err(|e| ConfigError::Source {
                origin: source.clone(),
                reason: e.to_string(),
            })?;
            merge_table(&defaults, &mut merged, &layer, "", &source)?;
        }
        if let Some(path) = &sources.env_file {
            let vars = read_env_file(path)?;
            apply_env(
                &defaults,
                &mut merged,
                &vars,
                &format!("env file {}", path.display()),
            )?;
        }
        let process: Vec<(String, String)> = sources
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("LEADGEN_") || k == "DATABASE_URL")
            .cloned()
            .collect();
        apply_env(&defaults, &mut merged, &process, "the environment")?;
        for (path, value) in &sources.overrides {
            set_path(&mut merged, path, value.clone());
        }

        let config: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Invalid {
                path,
                reason: e.into_inner().message().to_string(),
                origin: "the merged configuration".into(),
            }
        })?;
        config.check()?;
        Ok(config)
    }

    /// Rules that a single key's type cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        let rule = |path: &str, reason: &str| ConfigError::Rule {
            path: path.into(),
            reason: reason.into(),
        };
        let h = &self.http_headers;
        if h.hsts_max_age_secs < 31_536_000 {
            return Err(rule(
                "http_headers.hsts_max_age_secs",
                "must be at least 31536000 (one year)",
            ));
        }
        if !h.hsts_include_subdomains {
            return Err(rule(
                "http_headers.hsts_include_subdomains",
                "must be true: HSTS has to cover subdomains",
            ));
        }
        check_csp(&h.content_security_policy)
            .map_err(|reason| rule("http_headers.content_security_policy", &reason))?;
        self.check_mail()?;
        if self.server.max_body_bytes == 0 {
            return Err(rule("server.max_body_bytes", "must be greater than 0"));
        }
        if !(1..=90).contains(&self.auth.account_deletion_grace_days) {
            return Err(rule(
                "auth.account_deletion_grace_days",
                "must be from 1 to 90",
            ));
        }
        if self.privacy.request_check_secs == 0 || self.privacy.request_check_secs > 86_400 {
            return Err(rule(
                "privacy.request_check_secs",
                "must be from 1 to 86400",
            ));
        }
        if !(1..=29).contains(&self.privacy.request_alert_days) {
            return Err(rule(
                "privacy.request_alert_days",
                "must be from 1 to 29 (the GDPR deadline is 30 days)",
            ));
        }
        let o = &self.operators;
        if !(60..=3600).contains(&o.session_idle_secs)
            || !(300..=43_200).contains(&o.session_max_secs)
            || o.session_idle_secs > o.session_max_secs
        {
            return Err(rule(
                "operators.session_idle_secs",
                "operator sessions: idle 60 to 3600 s, at most 300 to 43200 s, idle no longer than the maximum",
            ));
        }
        let b = &self.backup;
        if !(1..=400).contains(&b.retention_full) {
            return Err(rule("backup.retention_full", "must be from 1 to 400"));
        }
        if !(10..=3600).contains(&b.archive_timeout_secs) {
            return Err(rule(
                "backup.archive_timeout_secs",
                "must be from 10 to 3600 seconds",
            ));
        }
        if b.external() == b.external_stanza.is_empty() {
            return Err(rule(
                "backup.external_stanza",
                "backup.external_config and backup.external_stanza go together",
            ));
        }
        if b.external() && self.database.embedded() {
            return Err(rule(
                "backup.external_config",
                "is for an external PostgreSQL; the embedded cluster's stanza is LeadGen's own",
            ));
        }
        if b.check_secs == 0 || b.check_secs > 86_400 || b.proof_max_age_days == 0 {
            return Err(rule(
                "backup.check_secs",
                "backup.check_secs must be 1 to 86400 and backup.proof_max_age_days at least 1",
            ));
        }
        if b.max_full_age_hours == 0 || b.max_incr_age_hours == 0 {
            return Err(rule("backup.max_full_age_hours", "must be at least 1"));
        }
        if !(12..=120).contains(&self.retention.audit_months) {
            return Err(rule("retention.audit_months", "must be from 12 to 120"));
        }
        if !(1..=100_000).contains(&self.retention.batch_size) {
            return Err(rule("retention.batch_size", "must be between 1 and 100000"));
        }
        for (path, v) in [
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            (
                "server.tls_handshake_timeout_secs",
                self.server.tls_handshake_timeout_secs,
            ),
            (
                "server.request_timeout_secs",
                self.server.request_timeout_secs,
            ),
            ("tls.reload_interval_secs", self.tls.reload_interval_secs),
        ] {
            if v == 0 {
                return Err(rule(path, "must be greater than 0"));
            }
        }
        let a = &self.auth;
        if a.bcrypt_cost < leadgen_crypto::password::MIN_COST || a.bcrypt_cost > 16 {
            return Err(rule("auth.bcrypt_cost", "must be between 10 and 16"));
        }
        if a.jwt_algorithms.is_empty()
            || a.jwt_algorithms
                .iter()
                .any(|alg| alg != leadgen_crypto::jwt::HS256)
        {
            return Err(rule(
                "auth.jwt_algorithms",
                "only \"HS256\" is implemented; list it and nothing else",
            ));
        }
        if a.access_token_ttl_secs < 60 || a.access_token_ttl_secs > a.max_access_token_ttl_secs {
            return Err(rule(
                "auth.access_token_ttl_secs",
                "must be at least 60 and at most auth.max_access_token_ttl_secs",
            ));
        }
        for (path, v) in [
            ("auth.refresh_reuse_grace_secs", a.refresh_reuse_grace_secs),
            ("auth.session_lifetime_secs", a.session_lifetime_secs),
            ("auth.confirmation_ttl_secs", a.confirmation_ttl_secs),
            ("auth.recovery_ttl_secs", a.recovery_ttl_secs),
        ] {
            if v < 0 {
                return Err(rule(path, "must not be negative"));
            }
        }
        for (name, p) in [
            ("google", &self.sso.google),
            ("linkedin", &self.sso.linkedin),
        ] {
            if !p.enabled() {
                continue;
            }
            if p.client_secret.expose_secret().is_empty() {
                return Err(rule(
                    &format!("sso.{name}.client_secret"),
                    &format!(
                        "required when sso.{name}.client_id is set (prefer LEADGEN_SSO__{}__CLIENT_SECRET_FILE)",
                        name.to_ascii_uppercase()
                    ),
                ));
            }
        }
        let i = &self.imports;
        if !(1..=50_000).contains(&i.batch_rows) {
            return Err(rule("imports.batch_rows", "must be between 1 and 50000"));
        }
        if !(1..=3600).contains(&i.lease_secs) {
            return Err(rule("imports.lease_secs", "must be between 1 and 3600"));
        }
        if i.poll_ms == 0 {
            return Err(rule("imports.poll_ms", "must be greater than 0"));
        }
        if !(1..=200).contains(&i.preview_rows) {
            return Err(rule("imports.preview_rows", "must be between 1 and 200"));
        }
        if !(60..=86_400).contains(&i.export_link_secs) {
            return Err(rule(
                "imports.export_link_secs",
                "must be between 60 and 86400 (a day)",
            ));
        }
        let k = &self.api_keys;
        if k.max_ttl_days < 1 || k.max_ttl_days > 366 {
            return Err(rule("api_keys.max_ttl_days", "must be between 1 and 366"));
        }
        if k.default_ttl_days < 1 || k.default_ttl_days > k.max_ttl_days {
            return Err(rule(
                "api_keys.default_ttl_days",
                "must be at least 1 and at most api_keys.max_ttl_days",
            ));
        }
        if k.rotation_overlap_days < 0 || k.rotation_overlap_days > 30 {
            return Err(rule(
                "api_keys.rotation_overlap_days",
                "must be between 0 and 30",
            ));
        }
        if k.notice_check_secs == 0 {
            return Err(rule("api_keys.notice_check_secs", "must be greater than 0"));
        }
        let key = self.secrets.app_key.expose_secret();
        if !key.is_empty() && key.len() < 32 {
            return Err(rule("secrets.app_key", "must be at least 32 bytes"));
        }
        let master = self.secrets.master_key.expose_secret();
        if !master.is_empty()
            && !master.starts_with(crate::secrets::DEV_KEY_PREFIX)
            && let Err(e) = leadgen_crypto::field::MasterKey::parse(master)
        {
            return Err(rule("secrets.master_key", &e.to_string()));
        }
        if self.tls.cert_path.as_os_str().is_empty() != self.tls.key_path.as_os_str().is_empty() {
            return Err(rule(
                "tls.key_path",
                "tls.cert_path and tls.key_path must be set together",
            ));
        }
        if self.profile == Profile::Production {
            if key.is_empty() {
                return Err(rule(
                    "secrets.app_key",
                    "required in production (set LEADGEN_SECRETS__APP_KEY or LEADGEN_SECRETS__APP_KEY_FILE)",
                ));
            }
            if key.starts_with(crate::secrets::DEV_KEY_PREFIX) {
                return Err(rule(
                    "secrets.app_key",
                    "is a development key; production needs its own",
                ));
            }
            if master.is_empty() || master.starts_with(crate::secrets::DEV_KEY_PREFIX) {
                return Err(rule(
                    "secrets.master_key",
                    "required in production (32 random bytes as hex or base64, e.g. from \
                     `openssl rand -hex 32`; set LEADGEN_SECRETS__MASTER_KEY_FILE)",
                ));
            }
            if self.tls.cert_path.as_os_str().is_empty() {
                return Err(rule(
                    "tls.cert_path",
                    "required in production (a certificate issued for your domain)",
                ));
            }
            if self.server.plain_http == PlainHttp::Serve {
                return Err(rule(
                    "server.plain_http",
                    "\"serve\" is refused in production: plain HTTP may only redirect",
                ));
            }
        }
        Ok(())
    }

    /// The relay may only be reached over TLS unless it is on this machine; the campaign
    /// worker's limits must make sense.
    fn check_mail(&self) -> Result<(), ConfigError> {
        let rule = |path: &str, reason: &str| ConfigError::Rule {
            path: path.into(),
            reason: reason.into(),
        };
        let m = &self.mail;
        if m.smtp() {
            let loopback = m.host == "localhost"
                || m.host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if m.tls == MailTls::None && !loopback {
                return Err(rule(
                    "mail.tls",
                    "must be \"starttls\" or \"implicit\": mail leaves this machine only over TLS (\"none\" is for a relay on loopback)",
                ));
            }
            if m.port == 0 {
                return Err(rule("mail.port", "must be greater than 0"));
            }
            if m.pool_size == 0 || m.pool_size > 64 {
                return Err(rule("mail.pool_size", "must be from 1 to 64"));
            }
            if !m.username.is_empty() && m.password.expose_secret().is_empty() {
                return Err(rule(
                    "mail.password",
                    "required when mail.username is set (prefer LEADGEN_MAIL__PASSWORD_FILE)",
                ));
            }
        }
        let p = &self.public;
        if !(1..=600).contains(&p.early_access_min_fill_secs) {
            return Err(rule(
                "public.early_access_min_fill_secs",
                "must be from 1 to 600",
            ));
        }
        if !(1..=24 * 30).contains(&p.early_access_confirm_ttl_hours) {
            return Err(rule(
                "public.early_access_confirm_ttl_hours",
                "must be from 1 to 720",
            ));
        }
        if p.early_access_resend_after_secs < 60 {
            return Err(rule(
                "public.early_access_resend_after_secs",
                "must be at least 60",
            ));
        }
        let v = &self.vdp;
        for (i, c) in v.contacts.iter().enumerate() {
            let ok =
                url::Url::parse(c).is_ok_and(|u| matches!(u.scheme(), "mailto" | "https" | "tel"));
            if !ok {
                return Err(rule(
                    &format!("vdp.contacts[{i}]"),
                    "must be a mailto:, https: or tel: URI (RFC 9116 section 2.5.3)",
                ));
            }
        }
        if v.languages.trim().is_empty() {
            return Err(rule("vdp.languages", "must name at least one language"));
        }
        if v.max_attachments > 10 {
            return Err(rule("vdp.max_attachments", "must be from 0 to 10"));
        }
        if !(1024..=25 * 1024 * 1024).contains(&v.max_attachment_bytes) {
            return Err(rule(
                "vdp.max_attachment_bytes",
                "must be from 1024 to 26214400",
            ));
        }
        if !(1..48).contains(&v.triage_alert_hours) {
            return Err(rule(
                "vdp.triage_alert_hours",
                "must be from 1 to 47: the alert comes before the 48-hour acknowledgement promise runs out",
            ));
        }
        if v.check_secs == 0 || v.check_secs > 3600 {
            return Err(rule("vdp.check_secs", "must be from 1 to 3600"));
        }
        if !(1..=365).contains(&v.disclosure_days) {
            return Err(rule("vdp.disclosure_days", "must be from 1 to 365"));
        }
        let token = self.operators.api_token.expose_secret();
        if !token.is_empty() && token.len() < 32 {
            return Err(rule(
                "operators.api_token",
                "must be at least 32 characters",
            ));
        }
        let c = &self.campaigns;
        if c.batch == 0 || c.batch > 5000 {
            return Err(rule("campaigns.batch", "must be from 1 to 5000"));
        }
        if c.lease_secs < 5 {
            return Err(rule("campaigns.lease_secs", "must be at least 5"));
        }
        if c.max_attempts == 0 || c.max_attempts > 30 {
            return Err(rule("campaigns.max_attempts", "must be from 1 to 30"));
        }
        if c.soft_bounce_limit == 0 {
            return Err(rule("campaigns.soft_bounce_limit", "must be at least 1"));
        }
        let secret = c.report_secret.expose_secret();
        if !secret.is_empty() && secret.len() < 24 {
            return Err(rule(
                "campaigns.report_secret",
                "must be at least 24 characters",
            ));
        }
        Ok(())
    }

    /// The public base URL (no trailing slash).
    #[must_use]
    pub fn site_url(&self) -> String {
        if self.auth.site_url.is_empty() {
            format!("https://localhost:{}", self.server.https_port)
        } else {
            self.auth.site_url.trim_end_matches('/').to_string()
        }
    }

    /// The key store of per-organization data keys.
    #[must_use]
    pub fn org_key_dir(&self) -> PathBuf {
        if self.secrets.org_key_dir.as_os_str().is_empty() {
            self.data_dir.join("secrets").join("org-keys")
        } else {
            self.secrets.org_key_dir.clone()
        }
    }

    /// The embedded cluster's backup repository.
    #[must_use]
    pub fn backup_repo(&self) -> PathBuf {
        if self.backup.repo_path.as_os_str().is_empty() {
            self.data_dir.join("backups").join("repo")
        } else {
            self.backup.repo_path.clone()
        }
    }

    /// Where the development certificate and key live.
    #[must_use]
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }
}

/// A CSP that allows inline or eval'd script, or framing, is refused.
pub fn check_csp(csp: &str) -> Result<(), String> {
    let directives: BTreeMap<String, String> = csp
        .split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_ascii_lowercase(), value.to_ascii_lowercase()))
        })
        .collect();
    let scripts = directives
        .get("script-src")
        .or_else(|| directives.get("default-src"))
        .ok_or("needs script-src or default-src")?;
    if scripts.contains("'unsafe-inline'") || scripts.contains("'unsafe-eval'") {
        return Err("scripts may not use 'unsafe-inline' or 'unsafe-eval'".into());
    }
    if directives.get("frame-ancestors").map(|v| v.trim()) != Some("'none'") {
        return Err("must contain frame-ancestors 'none'".into());
    }
    Ok(())
}

/// Reads `KEY=value` lines; blank lines and `#` comments are skipped, quotes around values removed.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let source = format!("env file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Source {
        origin: source.clone(),
        reason: e.to_string(),
    })?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Source {
                origin: format!("{source}, line {}", n + 1),
                reason: "expected KEY=value".into(),
            });
        };
        let k = k.trim();
        if !k.starts_with("LEADGEN_") && k != "DATABASE_URL" {
            return Err(ConfigError::Source {
                origin: format!("{source}, line {}", n + 1),
                reason: format!("{k}: only LEADGEN_* variables and DATABASE_URL belong here"),
            });
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        vars.push((k.to_string(), v.to_string()));
    }
    Ok(vars)
}

/// Maps `LEADGEN_SECTION__KEY` to `section.key`.
fn env_key_path(var: &str) -> String {
    var.trim_start_matches("LEADGEN_")
        .to_ascii_lowercase()
        .replace("__", ".")
}

/// Applies environment variables: plain ones first, then `_FILE` variants, which win.
fn apply_env(
    defaults: &Value,
    merged: &mut Value,
    vars: &[(String, String)],
    source: &str,
) -> Result<(), ConfigError> {
    let mut plain = Vec::new();
    let mut files = Vec::new();
    for (k, v) in vars {
        if SOURCE_VARS.contains(&k.as_str()) {
            continue;
        }
        if k == "DATABASE_URL" {
            plain.push(("database.url".to_string(), k.clone(), v.clone()));
        } else if let Some(base) = k.strip_suffix("_FILE") {
            files.push((env_key_path(base), k.clone(), v.clone()));
        } else {
            plain.push((env_key_path(k), k.clone(), v.clone()));
        }
    }
    for (path, var, raw) in plain {
        let value = typed_value(defaults, &path, &raw, &format!("{var} in {source}"))?;
        set_path(merged, &path, value);
    }
    for (path, var, file) in files {
        let origin = format!("{var} in {source}");
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            reason: format!("cannot read {file}: {e}"),
            origin: origin.clone(),
        })?;
        let raw = text.strip_suffix('\n').unwrap_or(&text);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let value = typed_value(defaults, &path, raw, &origin)?;
        set_path(merged, &path, value);
    }
    Ok(())
}

/// Parses an environment string as the type the key has in the defaults.
fn typed_value(
    defaults: &Value,
    path: &str,
    raw: &str,
    source: &str,
) -> Result<Value, ConfigError> {
    let Some(default) = get_path(defaults, path) else {
        return Err(ConfigError::UnknownKey {
            path: path.into(),
            origin: source.into(),
        });
    };
    let invalid = |reason: String| ConfigError::Invalid {
        path: path.into(),
        reason,
        origin: source.into(),
    };
    Ok(match default {
        Value::String(_) => Value::String(raw.to_string()),
        Value::Integer(_) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| invalid(format!("expected an integer, got {raw:?}")))?,
        ),
        Value::Boolean(_) => Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(invalid(format!("expected true or false, got {raw:?}"))),
        }),
        Value::Float(_) => Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| invalid(format!("expected a number, got {raw:?}")))?,
        ),
        Value::Table(_) => return Err(invalid("is a section; set its keys instead".into())),
        other => toml::from_str::<BTreeMap<String, Value>>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut m| m.remove("v"))
            .ok_or_else(|| invalid(format!("expected a {}, got {raw:?}", other.type_str())))?,
    })
}

/// Merges `layer` into `merged`, refusing keys the defaults do not have.
fn merge_table(
    defaults: &Value,
    merged: &mut Value,
    layer: &Value,
    prefix: &str,
    source: &str,
) -> Result<(), ConfigError> {
    let Value::Table(entries) = layer else {
        return Ok(());
    };
    for (k, v) in entries {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match get_path(defaults, &path) {
            None => {
                return Err(ConfigError::UnknownKey {
                    path,
                    origin: source.into(),
                });
            }
            Some(Value::Table(_)) => merge_table(defaults, merged, v, &path, source)?,
            Some(_) => set_path(merged, &path, v.clone()),
        }
    }
    Ok(())
}

fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, k| v.as_table()?.get(k))
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut node = root;
    for p in parts {
        let Value::Table(t) = node else { return };
        node = t
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(toml::Table::new()));
    }
    if let Value::Table(t) = node {
        t.insert(last.to_string(), value);
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Development => "development",
            Self::Production => "production",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Sources {
        Sources {
            env: vars
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            ..Sources::default()
        }
    }

    #[test]
    fn defaults_load() {
        let c = Config::load(&Sources::default()).unwrap();
        assert_eq!(c.server.https_port, 8443);
        assert_eq!(c.server.http_port, 8080);
        assert_eq!(c.profile, Profile::Development);
        assert!(c.database.embedded());
    }

    #[test]
    fn env_sets_nested_keys_with_types() {
        let c = Config::load(&env(&[
            ("LEADGEN_SERVER__HTTPS_PORT", "9443"),
            ("LEADGEN_TLS__MIN_VERSION", "1.3"),
            ("DATABASE_URL", "postgres://leadgen_app@localhost/leadgen"),
        ]))
        .unwrap();
        assert_eq!(c.server.https_port, 9443);
        assert_eq!(c.tls.min_version, TlsVersion::Tls13);
        assert!(!c.database.embedded());
    }

    #[test]
    fn mail_leaves_the_machine_only_over_tls() {
        let relay = |host: &str, tls: &str| {
            Config::load(&env(&[
                ("LEADGEN_MAIL__HOST", host),
                ("LEADGEN_MAIL__TLS", tls),
            ]))
        };
        let e = relay("smtp.example.com", "none").unwrap_err();
        assert_eq!(e.path(), Some("mail.tls"), "{e}");
        assert!(relay("smtp.example.com", "starttls").is_ok());
        assert!(relay("smtp.example.com", "implicit").is_ok());
        assert!(
            relay("127.0.0.1", "none").is_ok(),
            "a relay on this machine"
        );
        assert!(relay("localhost", "none").is_ok());
        let e = relay("smtp.example.com", "sometimes").unwrap_err();
        assert!(e.to_string().contains("mail.tls"), "{e}");
        let e = Config::load(&env(&[
            ("LEADGEN_MAIL__HOST", "smtp.example.com"),
            ("LEADGEN_MAIL__USERNAME", "leadgen"),
        ]))
        .unwrap_err();
        assert_eq!(e.path(), Some("mail.password"), "{e}");
    }

    #[test]
    fn env_wrong_type_names_variable_and_key() {
        let e = Config::load(&env(&[("LEADGEN_SERVER__HTTPS_PORT", "eighty")])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("server.https_port"), "{msg}");
        assert!(msg.contains("LEADGEN_SERVER__HTTPS_PORT"), "{msg}");
    }

    #[test]
    fn unsafe_csp_is_refused() {
        let e = Config::load(&env(&[(
            "LEADGEN_HTTP_HEADERS__CONTENT_SECURITY_POLICY",
            "default-src 'self'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        )]))
        .unwrap_err();
        assert_eq!(e.path(), Some("http_headers.content_security_policy"));
        let e = Config::load(&env(&[(
            "LEADGEN_HTTP_HEADERS__CONTENT_SECURITY_POLICY",
            "default-src 'self'",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("frame-ancestors"), "{e}");
    }

    #[test]
    fn secret_file_variant_wins_and_secret_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "k".repeat(40) + "\n").unwrap();
        let c = Config::load(&env(&[
            ("LEADGEN_SECRETS__APP_KEY", "short"),
            ("LEADGEN_SECRETS__APP_KEY_FILE", f.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(c.secrets.app_key.expose_secret(), "k".repeat(40));
        assert!(
            !format!("{c:?}").contains("kkkk"),
            "Debug output leaks the secret"
        );
    }

    #[test]
    fn the_key_store_is_in_the_data_folder_unless_configured() {
        let c = Config::load(&env(&[("LEADGEN_DATA_DIR", "/var/lib/lg")])).unwrap();
        assert_eq!(
            c.org_key_dir(),
            PathBuf::from("/var/lib/lg/secrets/org-keys")
        );
        let c = Config::load(&env(&[
            ("LEADGEN_DATA_DIR", "/var/lib/lg"),
            ("LEADGEN_SECRETS__ORG_KEY_DIR", "/mnt/shared/lg-keys"),
        ]))
        .unwrap();
        assert_eq!(c.org_key_dir(), PathBuf::from("/mnt/shared/lg-keys"));
    }
}
