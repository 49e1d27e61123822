//! Outgoing mail through one mailer. With `[mail] host` set, every mail (campaigns and the
//! account mails) goes through [`Relay`]: SMTP with `lettre`, pooled connections, STARTTLS or
//! implicit TLS (plain only to a loopback relay, which the configuration enforces). Without it,
//! mail goes to the development mailbox: one JSON file per message in `<data_dir>/mailbox/`,
//! which the operator reads with any tool and tests read directly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    Starttls,
    Implicit,
    None,
}

/// The `[mail]` section of the configuration (its rules are checked with the rest of it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP relay; empty: the development mailbox.
    pub host: String,
    pub port: u16,
    pub tls: MailTls,
    pub username: String,
    pub password: SecretString,
    pub pool_size: u32,
    pub timeout_secs: u64,
    /// Sender of the account mails.
    pub from_address: String,
}

impl MailConfig {
    /// Whether mail goes to a relay (else to the development mailbox).
    #[must_use]
    pub fn smtp(&self) -> bool {
        !self.host.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Why a relay did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Try again later: a 4xx reply, or the relay could not be reached or timed out.
    #[error("deferred: {0}")]
    Transient(String),
    /// The relay refused the message for good (a 5xx reply).
    #[error("refused: {0}")]
    Permanent(String),
    /// The addresses could not form an envelope.
    #[error("bad address: {0}")]
    Address(String),
}

/// Connections to the configured relay, kept open and reused, at most `pool_size` at once.
///
/// LeadGen opens the TCP connections itself (and hands them to lettre's SMTP client) so it can
/// set `TCP_NODELAY`: lettre writes a message's final `.` on its own, and with Nagle's algorithm
/// on, that small write waits for the relay's delayed ACK (about 40 ms a message, per
/// connection). Implicit TLS connections are lettre's own until its release with the fix.
pub struct Relay {
    host: String,
    port: u16,
    tls: MailTls,
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    idle: std::sync::Mutex<Vec<AsyncSmtpConnection>>,
    slots: tokio::sync::Semaphore,
    /// The account mails' sender.
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// The relay of `[mail]`; the configuration check has already refused plain SMTP to a
    /// host that is not loopback.
    pub fn from_config(m: &MailConfig) -> anyhow::Result<Self> {
        let tls_parameters = match m.tls {
            MailTls::None => None,
            MailTls::Starttls | MailTls::Implicit => Some(
                TlsParameters::builder(m.host.clone())
                    .build_rustls()
                    .map_err(|e| anyhow::anyhow!("mail TLS for {}: {e}", m.host))?,
            ),
        };
        let from = m
            .from_address
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from_address: {e}"))?;
        Ok(Self {
            host: m.host.clone(),
            port: m.port,
            tls: m.tls,
            tls_parameters,
            credentials: (!m.username.is_empty()).then(|| {
                Credentials::new(m.username.clone(), m.password.expose_secret().to_string())
            }),
            timeout: Duration::from_secs(m.timeout_secs),
            hello: ClientId::default(),
            idle: std::sync::Mutex::default(),
            slots: tokio::sync::Semaphore::new(usize::try_from(m.pool_size).unwrap_or(8)),
            from,
        })
    }

    /// A new connection: greeting, EHLO, TLS as configured, and authentication.
    async fn connect(&self) -> Result<AsyncSmtpConnection, RelayError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            RelayError::Transient(format!(
                "the relay {}:{} is unreachable: {e}",
                self.host, self.port
            ))
        };
        let mut conn = if self.tls == MailTls::Implicit {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                self.tls_parameters.clone(),
                None,
            )
            .await
            .map_err(classify)?
        } else {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| unreachable(&e))?;
            tcp.set_nodelay(true).map_err(|e| unreachable(&e))?;
            let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(classify)?;
            if let Some(tls) = &self.tls_parameters {
                conn.starttls(tls.clone(), &self.hello)
                    .await
                    .map_err(classify)?;
            }
            conn
        };
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(classify)?;
        }
        Ok(conn)
    }

    async fn deliver(&self, envelope: &Envelope, message: &[u8]) -> Result<(), RelayError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| RelayError::Transient(e.to_string()))?;
        let reused = self.idle.lock().ok().and_then(|mut i| i.pop());
        let mut conn = match reused {
            Some(c) => c,
            None => tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| RelayError::Transient("the relay did not answer in time".into()))??,
        };
        let sent = tokio::time::timeout(self.timeout, conn.send(envelope, message))
            .await
            .map_err(|_| RelayError::Transient("the relay did not answer in time".into()));
        match sent {
            Ok(Ok(_)) => {
                if !conn.has_broken()
                    && let Ok(mut idle) = self.idle.lock()
                {
                    idle.push(conn);
                }
                Ok(())
            }
            Ok(Err(e)) => {
                // lettre closes a connection on any error reply, so it is not reused.
                conn.abort().await;
                Err(classify(e))
            }
            Err(e) => {
                conn.abort().await;
                Err(e)
            }
        }
    }

    /// Hands one finished message (headers and body, CRLF) to the relay for `to`, with
    /// `from` as the envelope sender (where bounces go).
    pub async fn send_raw(&self, from: &str, to: &str, message: &[u8]) -> Result<(), RelayError> {
        let parse = |a: &str| {
            a.parse::<lettre::Address>()
                .map_err(|e| RelayError::Address(format!("{a}: {e}")))
        };
        let envelope = Envelope::new(Some(parse(from)?), vec![parse(to)?])
            .map_err(|e| RelayError::Address(e.to_string()))?;
        self.deliver(&envelope, message).await
    }
}

/// A 5xx is final; everything else (4xx, a refused connection, a timeout, a dropped
/// connection) may succeed later.
fn classify(e: lettre::transport::smtp::Error) -> RelayError {
    let text = e.to_string();
    if e.is_permanent() {
        RelayError::Permanent(text)
    } else {
        RelayError::Transient(text)
    }
}

#[derive(Debug, Clone)]
pub struct Mailer {
    mailbox: PathBuf,
    relay: Option<Arc<Relay>>,
}

impl Mailer {
    #[must_use]
    pub fn dev_mailbox(data_dir: &std::path::Path) -> Self {
        Self {
            mailbox: data_dir.join("mailbox"),
            relay: None,
        }
    }

    /// The mailer of a configuration: through the relay when `[mail] host` is set.
    pub fn from_config(m: &MailConfig, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let mut mailer = Self::dev_mailbox(data_dir);
        if m.smtp() {
            mailer.relay = Some(Arc::new(Relay::from_config(m)?));
        }
        Ok(mailer)
    }

    /// The SMTP relay, when one is configured.
    #[must_use]
    pub fn relay(&self) -> Option<&Arc<Relay>> {
        self.relay.as_ref()
    }

    /// Delivers `mail`: to the relay, or into the mailbox, where the file appears whole
    /// (written then renamed) or not at all.
    pub async fn send(&self, mail: &Mail, now: time::OffsetDateTime) -> std::io::Result<()> {
        if let Some(relay) = &self.relay {
            return self.send_smtp(relay, mail, now).await;
        }
        tokio::fs::create_dir_all(&self.mailbox).await?;
        let id = uuid::Uuid::now_v7();
        let stamp = now.unix_timestamp_nanos();
        let body = serde_json::json!({
            "to": mail.to, "subject": mail.subject, "text": mail.text,
            "sent_at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        });
        let tmp = self.mailbox.join(format!(".{id}.tmp"));
        let dest = self.mailbox.join(format!("{stamp}-{id}.json"));
        tokio::fs::write(&tmp, serde_json::to_vec_pretty(&body).unwrap_or_default()).await?;
        tokio::fs::rename(&tmp, &dest).await?;
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail delivered to the development mailbox");
        Ok(())
    }

    async fn send_smtp(
        &self,
        relay: &Relay,
        mail: &Mail,
        now: time::OffsetDateTime,
    ) -> std::io::Result<()> {
        fn other(e: impl std::fmt::Display) -> std::io::Error {
            std::io::Error::other(e.to_string())
        }
        let to: lettre::message::Mailbox = mail.to.parse().map_err(other)?;
        let date = std::time::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(now.unix_timestamp()).unwrap_or(0));
        let message = lettre::Message::builder()
            .from(relay.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .date(date)
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::now_v7(),
                relay.from.email.domain()
            )))
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(other)?;
        relay
            .deliver(message.envelope(), &message.formatted())
            .await
            .map_err(other)?;
        tracing::info!(subject = %mail.subject, "mail handed to the relay");
        Ok(())
    }
}
