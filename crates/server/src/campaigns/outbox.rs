//! The delivery worker: starts due campaigns (resolving their audience into the outbox under the
//! ACL of whoever asked for the send) and delivers the outbox through the SMTP relay.
//!
//! One outbox row per recipient, claimed with a lease (`queued → sending`), then `sent`,
//! `deferred` (a 4xx or an unreachable relay: retried with doubling waits) or `failed` (a 5xx,
//! or out of attempts). A crashed worker's leases lapse and its messages are claimed again.
//! Each message's `Message-ID` is its row's id, so a message sent again after a crash (the relay
//! took it but the worker died before recording so) carries the same `Message-ID`, which
//! receivers use to drop the copy. Results are recorded as they arrive, and each message the
//! relay takes is first noted in this instance's journal (`<data_dir>/outbox/`, an append of its
//! id, microseconds after the relay's reply): after a crash the instance records the journal's
//! messages as sent before it sends anything, so only a message whose reply was on the wire at
//! the instant of the crash can go out twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use leadgen_mail::message::{ListUnsubscribe, Outgoing};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::CampaignsState;
use super::render::Prepared;
use crate::db::{Aal, Role, TenantContext, TenantTx};
use crate::leads::keys::lead_place;
use crate::leads::repo::{COLUMNS, LeadRow};
use crate::mail::{Relay, RelayError};

/// Longest a worker stays on one campaign before looking at the others (and at pauses).
const SLICE: Duration = Duration::from_secs(1);

/// Recipients counted per (organization, domain) in the current minute, for the per-domain cap.
type DomainCounts = Mutex<HashMap<(Uuid, String), (i64, u32)>>;

/// This instance's note of the messages the relay took, kept until they are recorded in the
/// database: 16 bytes (the message id) per message, appended without waiting for the disk (a
/// crash of the process leaves the written bytes in the page cache; a crash of the machine is
/// what the leases are for).
pub struct Journal {
    dir: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl Journal {
    /// Records as sent whatever earlier runs of this instance noted and did not record, then
    /// starts a new journal.
    pub async fn open(
        pool: &sqlx::PgPool,
        data_dir: &Path,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let dir = data_dir.join("outbox");
        std::fs::create_dir_all(&dir)?;
        let mut ids = Vec::new();
        let mut old = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                let bytes = std::fs::read(&path)?;
                ids.extend(
                    bytes
                        .chunks_exact(16)
                        .filter_map(|c| Uuid::from_slice(c).ok()),
                );
                old.push(path);
            }
        }
        for chunk in ids.chunks(5000) {
            let n = sqlx::query_scalar!("SELECT app.campaign_mark_sent($1, $2)", chunk, now)
                .fetch_one(pool)
                .await?
                .unwrap_or(0);
            if n > 0 {
                tracing::info!(
                    recorded = n,
                    "messages sent before a crash recorded from the journal"
                );
            }
        }
        for path in old {
            std::fs::remove_file(path)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", Uuid::now_v7())))?;
        Ok(Self {
            dir,
            file: Mutex::new(Some(file)),
        })
    }

    fn note(&self, message: Uuid) {
        use std::io::Write as _;
        if let Ok(mut f) = self.file.lock()
            && let Some(file) = f.as_mut()
            && let Err(e) = file.write_all(message.as_bytes())
        {
            tracing::warn!(error = %e, dir = %self.dir.display(), "the outbox journal could not be written");
        }
    }

    /// Empties the journal once everything in it is recorded (the worker is idle).
    fn clear(&self) {
        if let Ok(mut f) = self.file.lock()
            && let Some(file) = f.as_mut()
            && file.metadata().is_ok_and(|m| m.len() > 0)
            && let Err(e) = file.set_len(0)
        {
            tracing::warn!(error = %e, "the outbox journal could not be emptied");
        }
    }
}

/// Runs the worker until the server stops. Without a relay there is nothing to send to.
pub async fn run(state: CampaignsState) {
    let Some(relay) = state.mailer.relay().cloned() else {
        return;
    };
    let journal = loop {
        match Journal::open(&state.pool, &state.config.data_dir, state.clock.now()).await {
            Ok(j) => break Arc::new(j),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the outbox journal cannot be opened; campaigns wait");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let domains: Arc<DomainCounts> = Arc::default();
    let poll = Duration::from_millis(state.config.campaigns.poll_ms);
    loop {
        let worked = match tick(&state, &relay, &domains, &journal).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "campaign delivery failed; retrying");
                0
            }
        };
        if worked == 0 {
            journal.clear();
            tokio::select! {
                () = state.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// One look at every campaign with work; the number of messages handled.
async fn tick(
    state: &CampaignsState,
    relay: &Arc<Relay>,
    domains: &Arc<DomainCounts>,
    journal: &Arc<Journal>,
) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let work = sqlx::query!(
        r#"SELECT id AS "id!", org_id AS "org_id!", send_by AS "send_by!", role AS "role!"
           FROM app.campaign_work($1)"#,
        now
    )
    .fetch_all(&state.pool)
    .await?;
    let mut handled = 0;
    for w in work {
        let context = TenantContext {
            org_id: w.org_id,
            user_id: w.send_by,
            role: Role::parse(&w.role).unwrap_or(Role::Api),
            aal: Aal::Aal1,
        };
        handled += campaign(state, relay, domains, journal, context, w.id).await?;
    }
    Ok(handled)
}

struct Job {
    state: String,
    audience: Value,
    resolved: bool,
    subject: String,
    html: Option<String>,
    text: String,
    from_address: String,
    from_name: Option<String>,
    tracking: bool,
}

async fn job(tx: &mut TenantTx, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    let org = tx.context().org_id;
    let r = sqlx::query!(
        "SELECT c.state, c.audience, c.resolved_at IS NOT NULL AS \"resolved!\",
                t.subject, t.html, t.text, s.address, s.display_name, c.tracking
         FROM app.campaigns c
         JOIN app.campaign_templates t ON t.org_id = c.org_id AND t.id = c.template_id
         JOIN app.sender_identities s ON s.org_id = c.org_id AND s.id = c.sender_id
         WHERE c.org_id = $1 AND c.id = $2",
        org,
        id
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(r.map(|r| Job {
        state: r.state,
        audience: r.audience,
        resolved: r.resolved,
        subject: r.subject,
        html: r.html,
        text: r.text,
        from_address: r.address,
        from_name: r.display_name,
        tracking: r.tracking,
    }))
}

async fn campaign(
    state: &CampaignsState,
    relay: &Arc<Relay>,
    domains: &Arc<DomainCounts>,
    journal: &Arc<Journal>,
    context: TenantContext,
    id: Uuid,
) -> anyhow::Result<usize> {
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    let Some(job) = job(&mut tx, id).await? else {
        // The sender can no longer read the campaign (its ACL changed): nothing is sent in
        // their name.
        tx.commit().await?;
        return Ok(0);
    };
    if job.state == "scheduled" && !job.resolved {
        let n = resolve(state, &mut tx, id, &job.audience).await?;
        tx.commit().await?;
        return Ok(n.max(1));
    }
    tx.commit().await?;
    if job.state != "sending" {
        return Ok(0);
    }
    let prepared = match Prepared::new(&job.subject, job.html.as_deref(), &job.text) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(campaign = %id, error = %e, "the campaign's template no longer parses; pausing it");
            let mut tx = TenantTx::begin(&state.pool, context).await?;
            sqlx::query!(
                "UPDATE app.campaigns SET state = 'paused' WHERE org_id = $1 AND id = $2",
                context.org_id,
                id
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(0);
        }
    };
    let domain = job
        .from_address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    let Some(signer) = state.dkim.signer(&state.pool, &domain).await else {
        tracing::warn!(campaign = %id, %domain, "no DKIM key for the sender's domain; waiting");
        return Ok(0);
    };
    let sender = Arc::new(Sender {
        relay: relay.clone(),
        signer,
        prepared,
        from_address: job.from_address,
        from_name: job.from_name,
        tracking: job.tracking,
        domain,
        campaign: id,
        site: state.config.site_url(),
        unsubscribe_domain: state.config.campaigns.unsubscribe_domain.clone(),
        app_key: state.app_key.clone(),
        journal: journal.clone(),
    });
    let started = std::time::Instant::now();
    let mut handled = 0;
    while started.elapsed() < SLICE {
        let n = batch(state, &sender, domains, context).await?;
        if n == 0 {
            break;
        }
        handled += n;
    }
    finish_if_done(state, context, id).await?;
    Ok(handled)
}

/// When a lead of `app.leads` is not sent to: marked do-not-contact or do-not-sell, or its
/// address on the organization's suppression list. The audience count and the outbox use the same.
pub(crate) const SUPPRESSED: &str = "(do_not_contact OR do_not_sell OR EXISTS (
    SELECT 1 FROM app.suppressions s WHERE s.org_id = leads.org_id AND s.email_bidx = leads.email_bidx))";

/// Puts the audience into the outbox (one row per address; suppressed, do-not-contact and CCPA
/// do-not-sell addresses as `suppressed`) and starts sending.
async fn resolve(
    state: &CampaignsState,
    tx: &mut TenantTx,
    id: Uuid,
    audience: &Value,
) -> anyhow::Result<usize> {
    let org = tx.context().org_id;
    let fields = state.fields.clone();
    let filter = super::api::audience_filter(tx, audience, |e| fields.email_index(org, e))
        .await
        .map_err(|e| anyhow::anyhow!("the campaign's audience: {e}"))?;
    let mut qb = QueryBuilder::<Postgres>::new(
        "INSERT INTO app.campaign_messages (id, org_id, campaign_id, lead_id, email_bidx, state)
         SELECT app.uuid_v7(), org_id, ",
    );
    qb.push_bind(id).push(format!(
        ", id, email_bidx, CASE WHEN {SUPPRESSED} THEN 'suppressed' ELSE 'queued' END
             FROM app.leads WHERE org_id = "
    ));
    qb.push_bind(org).push(" AND email_bidx IS NOT NULL");
    crate::leads::search::push_filters(&mut qb, &filter, false);
    qb.push(" ON CONFLICT (campaign_id, email_bidx) DO NOTHING");
    let inserted = qb.build().execute(&mut **tx).await?.rows_affected();
    let now = state.clock.now();
    sqlx::query!(
        "UPDATE app.campaigns c SET state = 'sending', resolved_at = $3, started_at = $3, updated_at = $3,
            recipients = (SELECT count(*) FROM app.campaign_messages m
                          WHERE m.org_id = c.org_id AND m.campaign_id = c.id AND m.state = 'queued'),
            suppressed = (SELECT count(*) FROM app.campaign_messages m
                          WHERE m.org_id = c.org_id AND m.campaign_id = c.id AND m.state = 'suppressed')
         WHERE c.org_id = $1 AND c.id = $2",
        org,
        id,
        now
    )
    .execute(&mut **tx)
    .await?;
    tracing::info!(campaign = %id, recipients = inserted, "campaign audience resolved");
    Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
}

/// What every message of one campaign shares.
struct Sender {
    relay: Arc<Relay>,
    signer: Arc<leadgen_mail::dkim::Signer>,
    prepared: Arc<Prepared>,
    from_address: String,
    from_name: Option<String>,
    /// Opens and clicks counted (the campaign turned it on).
    tracking: bool,
    domain: String,
    campaign: Uuid,
    site: String,
    unsubscribe_domain: String,
    app_key: Arc<secrecy::SecretString>,
    journal: Arc<Journal>,
}

/// What became of one claimed message.
enum Outcome {
    Sent,
    Deferred(String),
    /// Not counted as an attempt: a send cap, not the relay, held it back.
    Held(OffsetDateTime),
    Failed(String),
    Suppressed,
    Skipped(&'static str),
}

/// Claims and sends one batch; the number of messages claimed.
async fn batch(
    state: &CampaignsState,
    sender: &Arc<Sender>,
    domains: &Arc<DomainCounts>,
    context: TenantContext,
) -> anyhow::Result<usize> {
    let cfg = &state.config.campaigns;
    let now = state.clock.now();
    let org = context.org_id;
    let mut limit = i64::from(cfg.batch);
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    for (cap, window) in [
        (cfg.max_per_hour, time::Duration::hours(1)),
        (cfg.max_per_day, time::Duration::days(1)),
    ] {
        if cap > 0 {
            let sent = sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!" FROM app.campaign_messages
                   WHERE org_id = $1 AND state = 'sent' AND sent_at > $2"#,
                org,
                now - window
            )
            .fetch_one(&mut *tx)
            .await?;
            limit = limit.min(i64::from(cap) - sent);
        }
    }
    if limit <= 0 {
        tx.commit().await?;
        return Ok(0);
    }
    let lease = now + time::Duration::seconds(i64::from(cfg.lease_secs));
    let claimed = sqlx::query!(
        r#"WITH c AS (
               SELECT id FROM app.campaign_messages
               WHERE org_id = $1 AND campaign_id = $2
                 AND (state = 'queued' OR (state = 'deferred' AND next_attempt_at <= $3)
                      OR (state = 'sending' AND lease_until < $3))
               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
           UPDATE app.campaign_messages m
              SET state = 'sending', lease_until = $5, attempts = m.attempts + 1
             FROM c
            WHERE m.org_id = $1 AND m.id = c.id
              AND EXISTS (SELECT 1 FROM app.campaigns k
                          WHERE k.org_id = $1 AND k.id = $2 AND k.state = 'sending')
           RETURNING m.id, m.lead_id, m.email_bidx, m.attempts,
                     EXISTS (SELECT 1 FROM app.suppressions s
                             WHERE s.org_id = m.org_id AND s.email_bidx = m.email_bidx) AS "suppressed!""#,
        org,
        sender.campaign,
        now,
        limit,
        lease
    )
    .fetch_all(&mut *tx)
    .await?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let ids: Vec<Uuid> = claimed.iter().map(|c| c.lead_id).collect();
    let leads: HashMap<Uuid, LeadRow> = sqlx::query_as::<_, LeadRow>(&format!(
        "SELECT {COLUMNS} FROM app.leads WHERE org_id = $1 AND id = ANY($2)"
    ))
    .bind(org)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|l| (l.id, l))
    .collect();
    tx.commit().await?;
    let n = claimed.len();
    // The organization's keys, loaded once for the batch (sending decrypts with the keys at hand).
    let sealed: Vec<&[u8]> = leads
        .values()
        .flat_map(|l| [l.email_ct.as_deref(), l.phone_ct.as_deref()])
        .flatten()
        .collect();
    state.fields.prepare(org, &sealed).await?;

    // Each message is rendered, signed and sent in its own task (both cores sign), at most
    // `pool_size` at a time; results are recorded as they arrive.
    let parallel = usize::try_from(state.config.mail.pool_size).unwrap_or(8) * 2;
    let per_domain = cfg.max_per_domain_minute;
    let mut results = futures_util::stream::iter(claimed.into_iter().map(|c| {
        let lead = leads.get(&c.lead_id).cloned();
        let sender = sender.clone();
        let fields = state.fields.clone();
        let domains = domains.clone();
        async move {
            // Marked do-not-contact or do-not-sell since the audience was resolved: not sent.
            let flagged = lead
                .as_ref()
                .is_some_and(|l| l.do_not_contact || l.do_not_sell);
            let outcome = if c.suppressed || flagged {
                Outcome::Suppressed
            } else if let Some(lead) = lead {
                deliver(
                    &sender,
                    &fields,
                    &domains,
                    per_domain,
                    c.id,
                    &c.email_bidx,
                    &lead,
                    now,
                )
                .await
            } else {
                Outcome::Skipped("the lead was deleted or is no longer readable by the sender")
            };
            (c.id, c.attempts, outcome)
        }
    }))
    .map(tokio::spawn)
    .buffer_unordered(parallel)
    .ready_chunks(64);
    while let Some(chunk) = results.next().await {
        let done: Vec<_> = chunk.into_iter().filter_map(Result::ok).collect();
        record(state, context, &done).await?;
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    sender: &Sender,
    fields: &crate::leads::FieldKeys,
    domains: &DomainCounts,
    per_domain: u32,
    message: Uuid,
    bidx: &[u8],
    lead: &LeadRow,
    now: OffsetDateTime,
) -> Outcome {
    let org = lead.org_id;
    let Some(ct) = &lead.email_ct else {
        return Outcome::Skipped("the lead has no address any more");
    };
    let Ok(to) = fields.decrypt_now(ct, &lead_place("email", org, lead.id)) else {
        return Outcome::Failed("the address did not decrypt".into());
    };
    // The address changed since the audience was resolved: the suppression check was for the
    // old one, so the new one waits for the next campaign.
    if fields
        .email_index(org, &to)
        .is_none_or(|i| i.as_slice() != bidx)
    {
        return Outcome::Skipped("the lead's address changed after the campaign started");
    }
    let rcpt_domain = to
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    if per_domain > 0 {
        let minute = now.unix_timestamp() / 60;
        if let Ok(mut d) = domains.lock() {
            let e = d.entry((org, rcpt_domain)).or_insert((minute, 0));
            if e.0 != minute {
                *e = (minute, 0);
            }
            if e.1 >= per_domain {
                return Outcome::Held(
                    OffsetDateTime::from_unix_timestamp((minute + 1) * 60).unwrap_or(now),
                );
            }
            e.1 += 1;
        }
    }
    let mut values = lead.plain_values();
    values.email = Some(to.clone());
    if sender.prepared.uses("phone")
        && let Some(p) = &lead.phone_ct
    {
        values.phone = fields
            .decrypt_now(p, &lead_place("phone", org, lead.id))
            .ok();
    }
    let rendered = sender.prepared.render(&values, lead.score);
    let token = super::public::token(&sender.app_key, message);
    let https = format!("{}/u/{token}", sender.site);
    let mail_domain = if sender.unsubscribe_domain.is_empty() {
        &sender.domain
    } else {
        &sender.unsubscribe_domain
    };
    let mailto = format!("unsubscribe+{token}@{mail_domain}");
    let text = format!(
        "{}\n\n--\nTo stop receiving these messages: {https}\n",
        rendered.text.trim_end()
    );
    let html = rendered.html.map(|h| {
        let h = with_footer(&h, &https);
        if sender.tracking {
            super::tracking::instrument(&h, &sender.site, &sender.app_key, message, &https)
        } else {
            h
        }
    });
    let message_id = format!("{message}@{}", sender.domain);
    let campaign = sender.campaign.to_string();
    let extra = [("X-LeadGen-Campaign", campaign.as_str())];
    let built = leadgen_mail::message::build(&Outgoing {
        from_name: sender.from_name.as_deref(),
        from_address: &sender.from_address,
        to: &to,
        reply_to: None,
        subject: &rendered.subject,
        message_id: &message_id,
        date: now.unix_timestamp(),
        text: &text,
        html: html.as_deref(),
        list_unsubscribe: Some(ListUnsubscribe {
            https: &https,
            mailto: &mailto,
        }),
        extra_headers: &extra,
    });
    let mut bytes = match built {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(format!("the message could not be built: {e}")),
    };
    match sender.signer.sign(&bytes, now.unix_timestamp()) {
        Ok(header) => {
            let mut signed = header.into_bytes();
            signed.append(&mut bytes);
            bytes = signed;
        }
        Err(e) => return Outcome::Failed(format!("DKIM signing failed: {e}")),
    }
    match sender
        .relay
        .send_raw(&sender.from_address, &to, &bytes)
        .await
    {
        Ok(()) => {
            sender.journal.note(message);
            Outcome::Sent
        }
        Err(RelayError::Transient(e)) => Outcome::Deferred(e),
        Err(e @ (RelayError::Permanent(_) | RelayError::Address(_))) => {
            Outcome::Failed(e.to_string())
        }
    }
}

/// The unsubscribe link at the foot of the HTML part (inside `<body>` when there is one).
fn with_footer(html: &str, link: &str) -> String {
    let footer = format!(
        "<p style=\"font-size:12px;color:#666\">To stop receiving these messages, \
         <a href=\"{}\">unsubscribe</a>.</p>",
        link.replace('&', "&amp;").replace('"', "&quot;")
    );
    match html.rfind("</body>") {
        Some(i) => format!("{}{footer}{}", &html[..i], &html[i..]),
        None => format!("{html}{footer}"),
    }
}

/// Records a chunk of results in one transaction.
async fn record(
    state: &CampaignsState,
    context: TenantContext,
    done: &[(Uuid, i16, Outcome)],
) -> anyhow::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let cfg = &state.config.campaigns;
    let now = state.clock.now();
    let (mut ids, mut states, mut next, mut replies) = (vec![], vec![], vec![], vec![]);
    let mut held = vec![];
    for (id, attempts, outcome) in done {
        let (st, at, reply): (&str, Option<OffsetDateTime>, Option<String>) = match outcome {
            Outcome::Sent => ("sent", None, None),
            Outcome::Suppressed => ("suppressed", None, None),
            Outcome::Skipped(why) => ("skipped", None, Some((*why).to_string())),
            Outcome::Failed(e) => ("failed", None, Some(e.clone())),
            Outcome::Held(until) => {
                held.push(*id);
                ("deferred", Some(*until), None)
            }
            Outcome::Deferred(e)
                if u32::try_from(*attempts).unwrap_or(u32::MAX) >= cfg.max_attempts =>
            {
                (
                    "failed",
                    None,
                    Some(format!("gave up after {attempts} attempts: {e}")),
                )
            }
            Outcome::Deferred(e) => {
                let wait = i64::from(cfg.retry_base_secs)
                    .saturating_mul(1_i64 << (attempts.clamp(&1, &16) - 1));
                (
                    "deferred",
                    Some(now + time::Duration::seconds(wait)),
                    Some(e.clone()),
                )
            }
        };
        ids.push(*id);
        states.push(st.to_string());
        next.push(at);
        replies.push(reply.map(|r| r.chars().take(1000).collect::<String>()));
    }
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    sqlx::query!(
        "UPDATE app.campaign_messages m
            SET state = u.state, next_attempt_at = u.next, smtp_reply = u.reply, lease_until = NULL,
                sent_at = CASE WHEN u.state = 'sent' THEN $2 ELSE m.sent_at END,
                attempts = CASE WHEN m.id = ANY($7) THEN m.attempts - 1 ELSE m.attempts END
           FROM unnest($3::uuid[], $4::text[], $5::timestamptz[], $6::text[]) AS u(id, state, next, reply)
          WHERE m.org_id = $1 AND m.id = u.id",
        context.org_id,
        now,
        &ids,
        &states,
        &next as &[Option<OffsetDateTime>],
        &replies as &[Option<String>],
        &held
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let sent = states.iter().filter(|s| *s == "sent").count();
    metrics::counter!("campaign_messages_sent_total").increment(sent as u64);
    let failed = states.iter().filter(|s| *s == "failed").count();
    if failed > 0 {
        metrics::counter!("campaign_messages_failed_total").increment(failed as u64);
    }
    let deferred = states.iter().filter(|s| *s == "deferred").count();
    if deferred > held.len() {
        metrics::counter!("campaign_messages_deferred_total")
            .increment((deferred - held.len()) as u64);
        tracing::warn!(
            deferred = deferred - held.len(),
            "the mail relay deferred messages; they will be retried"
        );
    }
    Ok(())
}

/// A campaign with nothing left to send (or retry) is sent.
async fn finish_if_done(
    state: &CampaignsState,
    context: TenantContext,
    id: Uuid,
) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    sqlx::query!(
        "UPDATE app.campaigns c SET state = 'sent', finished_at = $3, updated_at = $3
         WHERE c.org_id = $1 AND c.id = $2 AND c.state = 'sending'
           AND NOT EXISTS (SELECT 1 FROM app.campaign_messages m
                           WHERE m.org_id = c.org_id AND m.campaign_id = c.id
                             AND m.state IN ('queued', 'sending', 'deferred'))",
        context.org_id,
        id,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
