//! TLS: rustls with TLS 1.2 as the floor, 1.3 preferred, AEAD suites only, and a certificate
//! that is re-read from disk when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{Config, Profile, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Only AEAD cipher suites: AES-GCM and ChaCha20-Poly1305, TLS 1.3 first. Listed explicitly so
/// that a change of the provider's defaults cannot widen what LeadGen accepts.
fn provider() -> CryptoProvider {
    use ring::cipher_suite as cs;
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub struct CertSource {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True for the generated development certificate.
    pub self_signed_dev: bool,
}

/// Resolves to the current certificate; a background task swaps it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// Builds the rustls configuration and the resolver to reload.
pub fn server_config(
    config: &Config,
    source: &CertSource,
) -> Result<(Arc<rustls::ServerConfig>, Arc<ReloadingCert>), TlsError> {
    let provider = Arc::new(provider());
    let key = load_certified_key(source, &provider)?;
    let resolver = Arc::new(ReloadingCert {
        current: RwLock::new(Arc::new(key)),
    });
    let versions: &[&'static rustls::SupportedProtocolVersion] = match config.tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone() as Arc<dyn ResolvesServerCert>);
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(server), resolver))
}

fn load_certified_key(
    source: &CertSource,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&source.cert)
        .map_err(|e| file_err(&source.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&source.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(&source.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&source.key)
        .map_err(|e| file_err(&source.key, e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_err(&source.key, e.to_string()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| file_err(&source.key, format!("does not match the certificate: {e}")))?;
    Ok(ck)
}

/// Picks the certificate: the configured pair, or in development a generated self-signed one.
/// Production refuses a self-signed certificate.
pub fn cert_source(config: &Config) -> Result<CertSource, TlsError> {
    if !config.tls.cert_path.as_os_str().is_empty() {
        let source = CertSource {
            cert: config.tls.cert_path.clone(),
            key: config.tls.key_path.clone(),
            self_signed_dev: false,
        };
        if config.profile == Profile::Production && is_self_signed(&source.cert)? {
            return Err(TlsError::File {
                path: source.cert,
                reason: "a self-signed certificate is refused in production".into(),
            });
        }
        return Ok(source);
    }
    dev_certificate(&config.tls_dir())
}

/// True when the leaf certificate's issuer is its subject.
fn is_self_signed(path: &Path) -> Result<bool, TlsError> {
    let err = |reason: String| TlsError::File {
        path: path.to_path_buf(),
        reason,
    };
    let der = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no certificate in the file".into()))?
        .map_err(|e| err(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| err(e.to_string()))?;
    Ok(cert.issuer() == cert.subject())
}

/// Generates (once) a self-signed certificate for localhost in `dir`.
pub fn dev_certificate(dir: &Path) -> Result<CertSource, TlsError> {
    let cert = dir.join("dev-cert.pem");
    let key = dir.join("dev-key.pem");
    let source = CertSource {
        cert: cert.clone(),
        key: key.clone(),
        self_signed_dev: true,
    };
    if cert.exists() && key.exists() {
        return Ok(source);
    }
    let io = |e: std::io::Error| TlsError::File {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Setup(e.to_string()))?;
    crate::secrets::write_private(&key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(io)?;
    std::fs::write(&cert, generated.cert.pem()).map_err(io)?;
    Ok(source)
}

/// Re-reads the certificate pair whenever either file's modification time changes; a pair that
/// fails to load is logged and the current one stays.
pub async fn watch(resolver: Arc<ReloadingCert>, source: CertSource, every: Duration) {
    let stamp = |s: &CertSource| -> Option<(SystemTime, SystemTime)> {
        Some((
            std::fs::metadata(&s.cert).ok()?.modified().ok()?,
            std::fs::metadata(&s.key).ok()?.modified().ok()?,
        ))
    };
    let provider = provider();
    let mut last = stamp(&source);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = stamp(&source);
        if now == last {
            continue;
        }
        match load_certified_key(&source, &provider) {
            Ok(key) => {
                if let Ok(mut current) = resolver.current.write() {
                    *current = Arc::new(key);
                }
                last = now;
                tracing::info!(cert = %source.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate changed but does not load; keeping the current one")
            }
        }
    }
}
