//! The state every slice may use: configuration, the database pool, time, mail, the application
//! key and the version. Each slice's own state holds a [`Core`] beside what only it needs (the
//! leads' field keys, the identity's token keys, the perimeter's rules), so a new slice is given
//! exactly what it uses and nothing of the others'.
//!
//! Extractors shared by every slice (the signed-in user, the member, CSRF forms) ask only for
//! `Core: FromRef<S>`, so they work under any slice's state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::SecretString;
use sqlx::PgPool;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::mail::Mailer;

/// Whether the database answers, as the probe of `ops::database` last found it (each second):
/// read by the request gate and by readiness without asking the database.
#[derive(Debug, Clone)]
pub struct DatabaseHealth {
    up: Arc<AtomicBool>,
}

impl Default for DatabaseHealth {
    fn default() -> Self {
        Self {
            up: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl DatabaseHealth {
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records the probe's verdict; `true` when it changed.
    pub fn set(&self, up: bool) -> bool {
        let changed = self.up.swap(up, Ordering::Relaxed) != up;
        metrics::gauge!("database_up").set(if up { 1.0 } else { 0.0 });
        if changed {
            if up {
                tracing::info!("the database answers again");
            } else {
                tracing::error!("the database does not answer; requests get 503 until it does");
            }
        }
        changed
    }
}

#[derive(Clone)]
pub struct Core {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub clock: SharedClock,
    pub mailer: Mailer,
    /// The application key: CSRF tokens, and the keys derived from it.
    pub app_key: Arc<SecretString>,
    /// Shown in page footers.
    pub version: &'static str,
    pub database: DatabaseHealth,
}

impl Core {
    /// A state for unit tests of routers and extractors: default configuration, a pool that
    /// never connects unless used, the key given.
    #[cfg(test)]
    #[must_use]
    pub fn for_tests(app_key: &str) -> Self {
        let config = Config::load(&crate::config::Sources::default()).unwrap();
        Self {
            pool: sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
            clock: Arc::new(crate::clock::SystemClock),
            mailer: Mailer::dev_mailbox(std::path::Path::new("/nonexistent")),
            app_key: Arc::new(SecretString::from(app_key.to_string())),
            version: "test",
            database: DatabaseHealth::default(),
            config: Arc::new(config),
        }
    }
}

/// Implements `Deref<Target = Core>` and `FromRef<Self> for Core` for a slice's state that holds
/// its [`Core`] in a field named `core`: handlers read `state.pool`, and the shared extractors
/// find the core in any slice's state.
#[macro_export]
macro_rules! slice_state {
    ($ty:ty) => {
        impl ::std::ops::Deref for $ty {
            type Target = $crate::state::Core;
            fn deref(&self) -> &$crate::state::Core {
                &self.core
            }
        }
        impl ::axum::extract::FromRef<$ty> for $crate::state::Core {
            fn from_ref(s: &$ty) -> $crate::state::Core {
                s.core.clone()
            }
        }
    };
}
