//! The background workers of a serving instance, each given its slice's state. They stop when
//! the server shuts down; each resumes from durable state at the next start.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::AppState;

/// How often the access-token key ring and the data keys are re-read.
const KEY_RELOAD: Duration = Duration::from_secs(60);

/// The running workers.
pub struct Workers(Vec<JoinHandle<()>>);

impl Workers {
    pub fn abort(self) {
        for w in self.0 {
            w.abort();
        }
    }
}

/// Probes the database each second; an outage raises the `database-unavailable` alert once.
async fn watch_database(state: AppState) {
    let perimeter = state.perimeter.clone();
    crate::ops::database::watch(
        (*state.core.pool.connect_options()).clone(),
        state.core.database.clone(),
        move |up| {
            if !up {
                crate::perimeter::announce(
                    &perimeter,
                    "database-unavailable",
                    crate::perimeter::alerts::Event::DependencyUnavailable,
                    "the database does not answer: requests get 503 until it does".into(),
                );
            }
        },
    )
    .await;
}

pub fn start(state: &AppState) -> Workers {
    let config = &state.core.config;
    let mut w = vec![
        tokio::spawn(reload_keys(state.clone())),
        tokio::spawn(crate::perimeter::alert_loop(state.perimeter.clone())),
        tokio::spawn(crate::perimeter::reputation_sync(state.perimeter.clone())),
        tokio::spawn(watch_database(state.clone())),
        // Incident actions (blocks, frozen authentication, key rotations) and their alerts.
        tokio::spawn(crate::incidents::watch(state.auth.clone())),
        // Leads rescored after their organization's scoring model changed.
        tokio::spawn(crate::leads::scoring::run(state.leads.clone())),
        // Which full-text words are common, for the search's choice of plan.
        tokio::spawn(crate::leads::search::lexicon_loop(state.core.pool.clone())),
        // Company edits whose push to their leads a crash interrupted.
        tokio::spawn(crate::companies::run(state.leads.clone())),
        tokio::spawn(crate::leads::export_jobs::sweep(state.leads.clone())),
        // Lead imports of this instance, resumed from their checkpoints after a restart.
        tokio::spawn(crate::leads::import::worker::run(
            state.leads.clone(),
            state.leads.node.to_string(),
        )),
        tokio::spawn(api_key_notices(state.core.clone())),
        // Campaign delivery from the outbox, resumed after a restart from the leases.
        tokio::spawn(crate::campaigns::outbox::run(state.campaigns.clone())),
        tokio::spawn(crate::campaigns::reports::poll_maildir(
            state.campaigns.clone(),
        )),
        // Vulnerability reports still untriaged near their acknowledgement deadline.
        tokio::spawn(crate::public::vdp::watch(state.public.clone())),
        // Data-subject requests near their legal deadline.
        tokio::spawn(crate::privacy::requests::watch(
            state.leads.clone(),
            state.perimeter.clone(),
        )),
    ];
    if config.backup.enabled {
        // Backup and restore-proof status: metrics and the `backup-late` alert.
        w.push(tokio::spawn(crate::backups::watch(
            state.core.config.clone(),
            state.core.pool.clone(),
            state.core.clock.clone(),
            state.perimeter.clone(),
        )));
    }
    // An operator's WAF rules file is re-read when it changes.
    let path = config.perimeter.waf_rules_path.clone();
    if !path.as_os_str().is_empty() {
        w.push(tokio::spawn(state.perimeter.waf.clone().watch(
            path,
            Duration::from_secs(config.tls.reload_interval_secs),
        )));
    }
    Workers(w)
}

/// Other instances may rotate the signing key or add a data key: pick them up within a minute
/// (verification reloads at once when it meets an unknown `kid`).
async fn reload_keys(state: AppState) {
    let mut tick = tokio::time::interval(KEY_RELOAD);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (pool, now) = (&state.core.pool, state.core.clock.now());
        if let Err(e) = state.auth.auth.reload(pool, now).await {
            tracing::warn!(error = %e, "reloading access-token keys failed; keeping the current ones");
        }
        // `leadgen keys rotate-data` adds data keys: encrypt with the newest.
        if let Err(e) = state.leads.fields.reload().await {
            tracing::warn!(error = %e, "reloading data keys failed; keeping the current ones");
        }
        state.perimeter.limits.forget_idle();
    }
}

/// API keys near expiry: notices to their organization's admins at 14, 7 and 1 days.
async fn api_key_notices(core: crate::state::Core) {
    let mut tick =
        tokio::time::interval(Duration::from_secs(core.config.api_keys.notice_check_secs));
    loop {
        tick.tick().await;
        if let Err(e) = crate::orgs::api_keys::send_expiry_notices(&core).await {
            tracing::warn!(error = %e, "sending API key expiry notices failed; retrying at the next check");
        }
    }
}
