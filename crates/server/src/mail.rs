//! Outgoing mail through one mailer. Without SMTP configured (SMTP delivery arrives with the
//! campaigns capability), mail goes to the development mailbox: one JSON file per message in
//! `<data_dir>/mailbox/`, which the operator reads with any tool and tests read directly.

use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Mailer {
    mailbox: PathBuf,
}

impl Mailer {
    #[must_use]
    pub fn dev_mailbox(data_dir: &std::path::Path) -> Self {
        Self {
            mailbox: data_dir.join("mailbox"),
        }
    }

    /// Delivers `mail`; the file appears whole (written then renamed) or not at all.
    pub async fn send(&self, mail: &Mail, now: time::OffsetDateTime) -> std::io::Result<()> {
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
}
