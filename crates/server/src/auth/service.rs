//! Account and session logic, independent of HTTP.

use std::net::IpAddr;

use leadgen_crypto::password;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::AuthState;
use super::tokens::{Amr, random_token, token_hash};
use super::{AuthError, EmailAddress, throttle};
use crate::db::UserTx;
use crate::mail::Mail;

/// Where a request came from, stored with the session it creates.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub email_confirmed_at: Option<OffsetDateTime>,
    pub last_sign_in_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub user_metadata: serde_json::Value,
    pub factors: Vec<Factor>,
    /// Whether the account has a password (an `email` identity).
    pub has_password: bool,
    pub identities: Vec<Identity>,
}

/// A linked single sign-on identity as the user object lists it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_sign_in_at: OffsetDateTime,
}

/// An MFA factor as the user object lists it.
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: Uuid,
    pub factor_type: String,
    pub status: String,
    pub friendly_name: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A new session's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub refresh_token: String,
    pub user: User,
    /// The organization the session works in and the user's role there.
    pub org: Option<(Uuid, String)>,
    /// The claims of `access_token`.
    pub claims: std::sync::Arc<super::tokens::AccessClaims>,
}

pub enum SignupOutcome {
    /// Confirmation required: the user must open the mailed link first.
    AwaitingConfirmation(User),
    Session(Box<Session>),
}

async fn hash_password(state: &AuthState, password: String) -> Result<String, AuthError> {
    let cost = state.config.auth.bcrypt_cost;
    tokio::task::spawn_blocking(move || password::hash(&password, cost))
        .await
        .map_err(|e| AuthError::Internal(e.into()))?
        .map_err(|e| AuthError::Internal(e.into()))
}

async fn verify_password(password: String, hash: String) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .map_err(|e| AuthError::Internal(e.into()))
}

async fn load_user(tx: &mut UserTx, id: Uuid) -> Result<User, AuthError> {
    let u = sqlx::query!(
        "SELECT id, email, email_confirmed_at, last_sign_in_at, created_at, updated_at, user_metadata
         FROM app.users WHERE id = $1",
        id
    )
    .fetch_one(&mut **tx)
    .await?;
    let factors = sqlx::query_as!(
        Factor,
        "SELECT id, factor_type, status, friendly_name, created_at, updated_at
         FROM app.mfa_factors WHERE user_id = $1 ORDER BY created_at",
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    let identities = sqlx::query_as!(
        Identity,
        "SELECT provider, subject, email, created_at, last_sign_in_at
         FROM app.identities WHERE user_id = $1 ORDER BY created_at",
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    let has_password = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM app.credentials WHERE user_id = $1) AS \"e!\"",
        id
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(User {
        factors,
        identities,
        has_password,
        id: u.id,
        email: u.email,
        email_confirmed_at: u.email_confirmed_at,
        last_sign_in_at: u.last_sign_in_at,
        created_at: u.created_at,
        updated_at: u.updated_at,
        user_metadata: u.user_metadata,
    })
}

/// Sends one of the account mails.
pub(crate) async fn send_mail(
    state: &AuthState,
    mail: &Mail,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    state
        .mailer
        .send(mail, now)
        .await
        .map_err(|e| AuthError::Internal(e.into()))
}

/// Runs `work` (making a token and mailing it) after the answer has gone: a request for an
/// address with an account then takes as long as one without, so timing reveals nothing.
pub(crate) fn mail_in_background<F>(what: &'static str, user_id: Uuid, work: F)
where
    F: std::future::Future<Output = Result<(), AuthError>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::error!(error = %e, user_id = %user_id, "{what} mail failed");
        }
    });
}

/// The mail that confirms an address: a link for browsers and the token hash for API clients.
pub(crate) fn confirmation_mail(state: &AuthState, to: &str, token: &str) -> Mail {
    let link = format!(
        "{}/auth/v1/verify?token={token}&type=signup",
        state.config.site_url()
    );
    Mail {
        to: to.to_string(),
        subject: "Confirm your LeadGen account".into(),
        text: format!(
            "Confirm your email address to finish creating your LeadGen account:\n\n{link}\n\n\
             Confirmation code (token hash for API clients): {}\n\n\
             The link works once and expires in {} hours. If you did not sign up, ignore this message.\n",
            hex::encode(token_hash(token)),
            state.config.auth.confirmation_ttl_secs / 3600
        ),
    }
}

/// Creates an account. With confirmation required, an address that is already registered gets
/// the same answer as a new one (and nothing is changed), so sign-up cannot tell who has an account.
pub async fn signup(
    state: &AuthState,
    email: &str,
    password: String,
    metadata: serde_json::Value,
    origin: &Origin,
) -> Result<SignupOutcome, AuthError> {
    let email = EmailAddress::parse(email)?;
    password::check_policy(&password, &[email.as_str(), email.local_part()]).map_err(weak)?;
    if !metadata.is_object() {
        return Err(AuthError::BadRequest("data must be a JSON object".into()));
    }
    let hash = hash_password(state, password).await?;
    let now = state.clock.now();
    let confirm = state.config.auth.require_email_confirmation;
    let id = Uuid::now_v7();

    let mut tx = UserTx::begin(&state.pool, id).await?;
    let inserted = sqlx::query!(
        "INSERT INTO app.users (id, email, email_confirmed_at, created_at, updated_at, user_metadata)
         VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (email) DO NOTHING",
        id,
        email.as_str(),
        (!confirm).then_some(now),
        now,
        metadata
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        drop(tx);
        if !confirm {
            return Err(AuthError::UserAlreadyExists);
        }
        tracing::info!(target: "leadgen::audit", action = "signup_existing_email", "sign-up for an existing address");
        return Ok(SignupOutcome::AwaitingConfirmation(User {
            id,
            email: email.as_str().to_string(),
            email_confirmed_at: None,
            last_sign_in_at: None,
            created_at: now,
            updated_at: now,
            user_metadata: metadata,
            factors: Vec::new(),
            // What a new account shows, so the answer does not tell the two apart.
            has_password: true,
            identities: Vec::new(),
        }));
    }
    sqlx::query!(
        "INSERT INTO app.credentials (user_id, password_hash) VALUES ($1, $2)",
        id,
        hash
    )
    .execute(&mut *tx)
    .await?;
    if confirm {
        let token = random_token();
        let ttl = time::Duration::seconds(state.config.auth.confirmation_ttl_secs);
        sqlx::query!(
            "INSERT INTO app.one_time_tokens (token_hash, user_id, purpose, created_at, expires_at)
             VALUES ($1, $2, 'confirmation', $3, $4)",
            token_hash(&token),
            id,
            now,
            now + ttl
        )
        .execute(&mut *tx)
        .await?;
        let user = load_user(&mut tx, id).await?;
        tx.commit().await?;
        let mail = confirmation_mail(state, email.as_str(), &token);
        send_mail(state, &mail, now).await?;
        tracing::info!(target: "leadgen::audit", action = "signup", user_id = %id, "account created, awaiting confirmation");
        return Ok(SignupOutcome::AwaitingConfirmation(user));
    }
    let session = start_session(state, &mut tx, id, "password", origin).await?;
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "signup", user_id = %id, "account created");
    Ok(SignupOutcome::Session(Box::new(session)))
}

/// Opens a session inside `tx` (the user's transaction) and issues its tokens.
pub(crate) async fn start_session(
    state: &AuthState,
    tx: &mut UserTx,
    user_id: Uuid,
    method: &str,
    origin: &Origin,
) -> Result<Session, AuthError> {
    if state.perimeter.controls.auth_frozen() {
        return Err(AuthError::AuthFrozen);
    }
    let now = state.clock.now();
    // Signing in is how a person stops the deletion of their account they asked for.
    super::deletion::cancel_on_sign_in(state, tx, user_id).await?;
    let session_id = Uuid::now_v7();
    let not_after = now + time::Duration::seconds(state.config.auth.session_lifetime_secs);
    let ip = origin.ip.map(sqlx::types::ipnetwork::IpNetwork::from);
    let ua = origin
        .user_agent
        .as_deref()
        .map(|u| u.chars().take(512).collect::<String>());
    let amr = vec![Amr {
        method: method.into(),
        timestamp: now.unix_timestamp(),
    }];
    sqlx::query!(
        "INSERT INTO app.sessions (id, user_id, aal, created_at, not_after, user_agent, ip, org_id, amr)
         VALUES ($1, $2, 'aal1', $3, $4, $5, $6,
                 (SELECT m.org_id FROM app.memberships m WHERE m.user_id = $2
                  ORDER BY m.created_at, m.org_id LIMIT 1), $7)",
        session_id,
        user_id,
        now,
        not_after,
        ua,
        ip,
        serde_json::to_value(&amr).map_err(|e| AuthError::Internal(e.into()))?
    )
    .execute(&mut **tx)
    .await?;
    let refresh = random_token();
    insert_refresh_token(tx, &refresh, session_id, user_id, now).await?;
    sqlx::query!(
        "UPDATE app.users SET last_sign_in_at = $2 WHERE id = $1",
        user_id,
        now
    )
    .execute(&mut **tx)
    .await?;
    let user = load_user(tx, user_id).await?;
    let org = session_org(tx, session_id).await?;
    issue(state, user, session_id, refresh, amr, "aal1", org)
}

/// Stores a refresh token (its hash) for a session.
async fn insert_refresh_token(
    tx: &mut UserTx,
    token: &str,
    session_id: Uuid,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    sqlx::query!(
        "INSERT INTO app.refresh_tokens (token_hash, session_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
        token_hash(token),
        session_id,
        user_id,
        now
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a session to `aal2` after a verified second factor: new access token, and a new
/// refresh token replacing the session's earlier ones.
pub async fn raise_to_aal2(
    state: &AuthState,
    tx: &mut UserTx,
    user_id: Uuid,
    session_id: Uuid,
    amr: Vec<Amr>,
) -> Result<Session, AuthError> {
    let now = state.clock.now();
    sqlx::query!(
        "UPDATE app.sessions SET aal = 'aal2', refreshed_at = $2, amr = $3 WHERE id = $1",
        session_id,
        now,
        serde_json::to_value(&amr).map_err(|e| AuthError::Internal(e.into()))?
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "DELETE FROM app.refresh_tokens WHERE session_id = $1",
        session_id
    )
    .execute(&mut **tx)
    .await?;
    let refresh = random_token();
    insert_refresh_token(tx, &refresh, session_id, user_id, now).await?;
    let user = load_user(tx, user_id).await?;
    let org = session_org(tx, session_id).await?;
    issue(state, user, session_id, refresh, amr, "aal2", org)
}

/// The organization a session works in and the user's role there, read inside the user's
/// transaction (a user sees their own memberships).
async fn session_org(
    tx: &mut UserTx,
    session_id: Uuid,
) -> Result<Option<(Uuid, String)>, AuthError> {
    let row = sqlx::query!(
        "SELECT m.org_id, m.role FROM app.sessions s
         JOIN app.memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
         WHERE s.id = $1",
        session_id
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| (r.org_id, r.role)))
}

/// Moves a session to another organization its user belongs to and issues an access token that
/// carries it (the refresh token stays). `None`: the user is not a member there.
pub async fn switch_org(
    state: &AuthState,
    who: &super::AuthUser,
    org_id: Uuid,
) -> Result<Option<Session>, AuthError> {
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let moved = sqlx::query!(
        "UPDATE app.sessions SET org_id = $2 WHERE id = $1 AND EXISTS (
             SELECT 1 FROM app.memberships m WHERE m.org_id = $2 AND m.user_id = app.current_user_id())",
        who.session_id,
        org_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(None);
    }
    let user = load_user(&mut tx, who.user_id).await?;
    let org = session_org(&mut tx, who.session_id).await?;
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "session_switch_org", user_id = %who.user_id, org_id = %org_id, "session moved to another organization");
    issue(
        state,
        user,
        who.session_id,
        String::new(),
        who.claims.amr.clone(),
        &who.aal,
        org,
    )
    .map(Some)
}

fn issue(
    state: &AuthState,
    user: User,
    session_id: Uuid,
    refresh: String,
    amr: Vec<Amr>,
    aal: &str,
    org: Option<(Uuid, String)>,
) -> Result<Session, AuthError> {
    let now = state.clock.now().unix_timestamp();
    let (access, claims) = state
        .auth
        .access_token(
            super::tokens::TokenRequest {
                user_id: user.id,
                email: &user.email,
                session_id,
                aal,
                amr,
                org: org.clone(),
            },
            now,
        )
        .map_err(|e| AuthError::Internal(e.into()))?;
    Ok(Session {
        access_token: access,
        expires_in: claims.exp - now,
        expires_at: claims.exp,
        refresh_token: refresh,
        user,
        org,
        claims: std::sync::Arc::new(claims),
    })
}

/// Password sign-in. An unknown email and a wrong password get the same error after the same
/// amount of bcrypt work; repeated failures are throttled (see [`throttle`]).
pub async fn password_grant(
    state: &AuthState,
    email: &str,
    password: String,
    origin: &Origin,
) -> Result<Session, AuthError> {
    let now = state.clock.now();
    let keys = throttle::Keys::new(email, origin.ip);
    let wait = throttle::wait_secs(&state.pool, &keys, now).await?;
    if wait > 0 {
        tracing::info!(target: "leadgen::audit", action = "login_throttled", retry_after = wait, "sign-in throttled");
        metrics::counter!("auth_login_throttled_total").increment(1);
        return Err(AuthError::TooManyAttempts(wait));
    }
    match check_password(state, email, password).await {
        Ok(found) => {
            throttle::clear(&state.pool, &keys).await?;
            if state.config.auth.require_email_confirmation && found.confirmed_at.is_none() {
                return Err(AuthError::EmailNotConfirmed);
            }
            let mut tx = UserTx::begin(&state.pool, found.user_id).await?;
            if let Some(new_hash) = found.rehash {
                sqlx::query!(
                    "UPDATE app.credentials SET password_hash = $2, updated_at = now() WHERE user_id = $1",
                    found.user_id,
                    new_hash
                )
                .execute(&mut *tx)
                .await?;
            }
            let session = start_session(state, &mut tx, found.user_id, "password", origin).await?;
            tx.commit().await?;
            tracing::info!(target: "leadgen::audit", action = "login", user_id = %found.user_id, "signed in");
            Ok(session)
        }
        Err(AuthError::InvalidCredentials) => {
            throttle::record_failure(&state.pool, &keys, now).await?;
            if let Some(ip) = origin.ip {
                crate::perimeter::penalize_ip(
                    &state.perimeter,
                    ip,
                    crate::perimeter::reputation::Offence::AuthFailure,
                );
            }
            Err(AuthError::InvalidCredentials)
        }
        Err(e) => Err(e),
    }
}

struct Verified {
    user_id: Uuid,
    confirmed_at: Option<OffsetDateTime>,
    /// A new hash when the stored one was made at another cost.
    rehash: Option<String>,
}

/// Checks email and password. An unknown or malformed email costs the same bcrypt work as a
/// wrong password and gives the same error.
/// A signed-in user's password asked again before a sensitive change. Guessing it with a
/// stolen session is throttled like sign-in; a wrong one is answered with `wrong`.
pub(crate) async fn reconfirm_password(
    state: &AuthState,
    email: &str,
    password: String,
    origin: &Origin,
    wrong: AuthError,
) -> Result<(), AuthError> {
    let now = state.clock.now();
    let keys = throttle::Keys::new(email, origin.ip);
    let wait = throttle::wait_secs(&state.pool, &keys, now).await?;
    if wait > 0 {
        return Err(AuthError::TooManyAttempts(wait));
    }
    if check_password(state, email, password).await.is_err() {
        throttle::record_failure(&state.pool, &keys, now).await?;
        return Err(wrong);
    }
    Ok(())
}

async fn check_password(
    state: &AuthState,
    email: &str,
    password: String,
) -> Result<Verified, AuthError> {
    let decoy = || password::decoy_hash(state.config.auth.bcrypt_cost);
    let found = match EmailAddress::parse(email) {
        Ok(email) => sqlx::query!(
            "SELECT user_id AS \"user_id!\", password_hash AS \"password_hash!\", email_confirmed_at FROM app.auth_find_login($1)",
            email.as_str()
        )
        .fetch_optional(&state.pool)
        .await?,
        Err(_) => None,
    };
    let Some(found) = found else {
        let _ = verify_password(password, decoy()).await;
        tracing::info!(target: "leadgen::audit", action = "login_failed", reason = "unknown_email", "sign-in failed");
        metrics::counter!("auth_login_failures_total", "reason" => "unknown_email").increment(1);
        return Err(AuthError::InvalidCredentials);
    };
    if !verify_password(password.clone(), found.password_hash.clone()).await? {
        tracing::info!(target: "leadgen::audit", action = "login_failed", reason = "wrong_password", user_id = %found.user_id, "sign-in failed");
        metrics::counter!("auth_login_failures_total", "reason" => "wrong_password").increment(1);
        return Err(AuthError::InvalidCredentials);
    }
    let rehash = if password::cost_of(&found.password_hash) == Some(state.config.auth.bcrypt_cost) {
        None
    } else {
        Some(hash_password(state, password).await?)
    };
    Ok(Verified {
        user_id: found.user_id,
        confirmed_at: found.email_confirmed_at,
        rehash,
    })
}

/// Exchanges a refresh token for a new access token and the next refresh token.
///
/// A token already rotated less than `refresh_reuse_grace_secs` ago yields the session's current
/// token (two tabs refreshing at once); a later reuse means the token was stolen or replayed, so
/// the whole session is revoked.
pub async fn refresh_grant(state: &AuthState, token: &str) -> Result<Session, AuthError> {
    if state.perimeter.controls.auth_frozen() {
        return Err(AuthError::AuthFrozen);
    }
    let hash = token_hash(token);
    let found = sqlx::query!(
        "SELECT user_id AS \"user_id!\", session_id AS \"session_id!\" FROM app.auth_find_refresh($1)",
        hash
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(AuthError::RefreshTokenNotFound)?;
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, found.user_id).await?;
    let session = sqlx::query!(
        "SELECT revoked_at, not_after, aal, amr FROM app.sessions WHERE id = $1 FOR UPDATE",
        found.session_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if session.revoked_at.is_some() {
        return Err(AuthError::RefreshTokenReused);
    }
    if session.not_after <= now {
        return Err(AuthError::SessionExpired);
    }
    let grace = time::Duration::seconds(state.config.auth.refresh_reuse_grace_secs);
    // Walk the chain from the presented token to the current one.
    let mut current = token.to_string();
    let mut steps = 0;
    let fresh = loop {
        let rotated_at = sqlx::query_scalar!(
            "SELECT rotated_at FROM app.refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            token_hash(&current)
        )
        .fetch_optional(&mut *tx)
        .await?;
        match rotated_at {
            // Not rotated yet: this is the current token. Rotate it if it is the one presented;
            // if we arrived here along the chain, hand it out as it is.
            Some(None) if steps == 0 => {
                let next = state.auth.next_refresh_token(&current);
                sqlx::query!(
                    "UPDATE app.refresh_tokens SET rotated_at = $2 WHERE token_hash = $1",
                    hash,
                    now
                )
                .execute(&mut *tx)
                .await?;
                insert_refresh_token(&mut tx, &next, found.session_id, found.user_id, now).await?;
                break next;
            }
            Some(None) => break current,
            Some(Some(at)) if now - at <= grace && steps < 8 => {
                current = state.auth.next_refresh_token(&current);
                steps += 1;
            }
            _ => {
                sqlx::query!(
                    "UPDATE app.sessions SET revoked_at = $2, revoked_reason = 'refresh_token_reuse' WHERE id = $1",
                    found.session_id,
                    now
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::warn!(
                    target: "leadgen::audit",
                    action = "refresh_token_reuse",
                    user_id = %found.user_id,
                    session_id = %found.session_id,
                    "refresh token reused after rotation; session revoked"
                );
                metrics::counter!("auth_refresh_reuse_total").increment(1);
                return Err(AuthError::RefreshTokenReused);
            }
        }
    };
    sqlx::query!(
        "UPDATE app.sessions SET refreshed_at = $2 WHERE id = $1",
        found.session_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    let user = load_user(&mut tx, found.user_id).await?;
    let org = session_org(&mut tx, found.session_id).await?;
    tx.commit().await?;
    // The session's own record of how it was authenticated; sessions from before it was kept
    // fall back to password (and TOTP at aal2).
    let mut amr: Vec<Amr> = serde_json::from_value(session.amr).unwrap_or_default();
    if amr.is_empty() {
        amr.push(Amr {
            method: "password".into(),
            timestamp: now.unix_timestamp(),
        });
        if session.aal == "aal2" {
            amr.insert(
                0,
                Amr {
                    method: "totp".into(),
                    timestamp: now.unix_timestamp(),
                },
            );
        }
    }
    issue(state, user, found.session_id, fresh, amr, &session.aal, org)
}

/// What a mailed single-use token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimePurpose {
    Confirmation,
    Recovery,
    MagicLink,
    EmailCode,
}

impl OneTimePurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Recovery => "recovery",
            Self::MagicLink => "magiclink",
            Self::EmailCode => "email_otp",
        }
    }

    /// The `amr` method the resulting session records.
    fn method(self) -> &'static str {
        match self {
            Self::Confirmation | Self::MagicLink | Self::EmailCode => "otp",
            Self::Recovery => "recovery",
        }
    }
}

/// A redeemed mailed token: the new session and, when a PKCE client started the flow, its
/// challenge and where to send the browser with the authorization code.
pub struct Redeemed {
    pub session: Session,
    pub purpose: OneTimePurpose,
    pub pkce: Option<(String, Option<String>)>,
}

/// The stored hash of a mailed token, given as the token itself or its hex SHA-256.
pub fn mailed_token_hash(
    token: Option<&str>,
    token_hash_hex: Option<&str>,
) -> Result<Vec<u8>, AuthError> {
    match (token, token_hash_hex) {
        (Some(t), _) => Ok(token_hash(t)),
        (None, Some(h)) => hex::decode(h).map_err(|_| AuthError::OtpExpired),
        (None, None) => Err(AuthError::BadRequest(
            "token or token_hash is required".into(),
        )),
    }
}

/// Redeems a mailed token of one of `purposes` once and signs the user in. Any purpose proves
/// the user reads the address, so it also confirms it. Redeeming a sign-in link or code spends
/// its twin as well.
pub async fn redeem_one_time(
    state: &AuthState,
    purposes: &[OneTimePurpose],
    hash: Vec<u8>,
    origin: &Origin,
) -> Result<Redeemed, AuthError> {
    let mut found = None;
    for p in purposes {
        if let Some(user_id) =
            sqlx::query_scalar!("SELECT app.auth_find_one_time($1, $2)", hash, p.as_str())
                .fetch_one(&state.pool)
                .await?
        {
            found = Some((user_id, *p));
            break;
        }
    }
    let (user_id, purpose) = found.ok_or(AuthError::OtpExpired)?;
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    let used = sqlx::query!(
        "UPDATE app.one_time_tokens SET used_at = $2
         WHERE token_hash = $1 AND purpose = $3 AND used_at IS NULL AND expires_at > $2
         RETURNING code_challenge, redirect_to",
        hash,
        now,
        purpose.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AuthError::OtpExpired)?;
    if matches!(
        purpose,
        OneTimePurpose::MagicLink | OneTimePurpose::EmailCode
    ) {
        sqlx::query!(
            "UPDATE app.one_time_tokens SET used_at = $2
             WHERE user_id = $1 AND purpose IN ('magiclink', 'email_otp') AND used_at IS NULL",
            user_id,
            now
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE app.users SET email_confirmed_at = coalesce(email_confirmed_at, $2), updated_at = $2 WHERE id = $1",
        user_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    let session = start_session(state, &mut tx, user_id, purpose.method(), origin).await?;
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "one_time_token_redeemed", purpose = purpose.as_str(), user_id = %user_id, "mailed token redeemed");
    Ok(Redeemed {
        session,
        purpose,
        pkce: used.code_challenge.map(|c| (c, used.redirect_to)),
    })
}

/// Starts a password reset. The answer and its timing are the same whether or not the address
/// has an account: the lookup runs either way, and the token and mail are made in the background.
pub async fn request_recovery(
    state: &AuthState,
    email: &str,
    pkce: Option<super::passwordless::Pkce>,
    redirect_to: Option<String>,
) -> Result<(), AuthError> {
    let Ok(email) = EmailAddress::parse(email) else {
        return Ok(());
    };
    let found = sqlx::query_scalar!(
        "SELECT user_id AS \"user_id!\" FROM app.auth_find_login($1)",
        email.as_str()
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(user_id) = found else {
        tracing::info!(target: "leadgen::audit", action = "recovery_unknown_email", "password reset for an unknown address");
        return Ok(());
    };
    let state = state.clone();
    mail_in_background("password reset", user_id, async move {
        send_recovery(&state, user_id, email.as_str(), pkce, redirect_to).await
    });
    Ok(())
}

async fn send_recovery(
    state: &AuthState,
    user_id: Uuid,
    email: &str,
    pkce: Option<super::passwordless::Pkce>,
    redirect_to: Option<String>,
) -> Result<(), AuthError> {
    let now = state.clock.now();
    let token = random_token();
    let ttl = state.config.auth.recovery_ttl_secs;
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    sqlx::query!(
        "INSERT INTO app.one_time_tokens
             (token_hash, user_id, purpose, created_at, expires_at, code_challenge, redirect_to)
         VALUES ($1, $2, 'recovery', $3, $4, $5, $6)",
        token_hash(&token),
        user_id,
        now,
        now + time::Duration::seconds(ttl),
        pkce.as_ref().map(super::passwordless::Pkce::as_str),
        redirect_to
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let link = format!(
        "{}/auth/v1/verify?token={token}&type=recovery",
        state.config.site_url()
    );
    let mail = Mail {
        to: email.to_string(),
        subject: "Reset your LeadGen password".into(),
        text: format!(
            "Someone asked to reset the password of your LeadGen account. To choose a new one, open:\n\n{link}\n\n\
             Reset code (token hash for API clients): {}\n\n\
             The link works once and expires in {} minutes. If you did not ask, ignore this message; your password stays as it is.\n",
            hex::encode(token_hash(&token)),
            ttl / 60
        ),
    };
    send_mail(state, &mail, now).await?;
    tracing::info!(target: "leadgen::audit", action = "recovery_requested", user_id = %user_id, "password reset mail sent");
    Ok(())
}

/// A session created from a reset link may set a new password without the old one for this long.
const RECOVERY_WINDOW_SECS: i64 = 15 * 60;

/// Whether the session was opened by a password-reset link in the last 15 minutes.
#[must_use]
pub fn is_recovering(who: &super::AuthUser, now: OffsetDateTime) -> bool {
    who.claims.amr.iter().any(|a| {
        a.method == "recovery" && now.unix_timestamp() - a.timestamp <= RECOVERY_WINDOW_SECS
    })
}

/// Changes the password: needs the current password, unless the session was opened by a reset
/// link in the last 15 minutes or the user just spent a mailed reauthentication nonce
/// (`reauthenticated`). Every other session of the user ends.
pub async fn change_password(
    state: &AuthState,
    who: &super::AuthUser,
    new_password: String,
    current_password: Option<String>,
    reauthenticated: bool,
    origin: &Origin,
) -> Result<User, AuthError> {
    let now = state.clock.now();
    let recovering = reauthenticated || is_recovering(who, now);
    let email = who.claims.email.clone();
    if !recovering {
        let current = current_password.ok_or(AuthError::ReauthenticationNeeded)?;
        reconfirm_password(
            state,
            &email,
            current,
            origin,
            AuthError::ReauthenticationNeeded,
        )
        .await?;
    }
    let parsed = EmailAddress::parse(&email)?;
    password::check_policy(&new_password, &[parsed.as_str(), parsed.local_part()]).map_err(weak)?;
    let hash = hash_password(state, new_password).await?;
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    sqlx::query!(
        "UPDATE app.credentials SET password_hash = $2, updated_at = $3 WHERE user_id = $1",
        who.user_id,
        hash,
        now
    )
    .execute(&mut *tx)
    .await?;
    let ended = sqlx::query!(
        "UPDATE app.sessions SET revoked_at = $3, revoked_reason = 'password_changed'
         WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        who.user_id,
        who.session_id,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let user = load_user(&mut tx, who.user_id).await?;
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "password_changed", user_id = %who.user_id, other_sessions_ended = ended, "password changed");
    Ok(user)
}

fn weak(e: password::WeakPassword) -> AuthError {
    let reason = match e {
        password::WeakPassword::TooShort | password::WeakPassword::TooLong => "length",
        password::WeakPassword::Common => "pwned",
        password::WeakPassword::Guessable(_) => "characters",
    };
    AuthError::WeakPassword(e.to_string(), reason)
}

/// Replaces the user's metadata (`data` in Supabase's API).
pub async fn update_metadata(
    state: &AuthState,
    user_id: Uuid,
    data: &serde_json::Value,
) -> Result<(), AuthError> {
    if !data.is_object() {
        return Err(AuthError::BadRequest("data must be a JSON object".into()));
    }
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    sqlx::query!(
        "UPDATE app.users SET user_metadata = $2, updated_at = $3 WHERE id = $1",
        user_id,
        data,
        state.clock.now()
    )
    .execute(&mut *tx)
    .await
    .map_err(
        |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some("23514") => AuthError::BadRequest("data is too large (16 KiB at most)".into()),
            _ => e.into(),
        },
    )?;
    tx.commit().await?;
    Ok(())
}

pub async fn current_user(pool: &PgPool, user_id: Uuid) -> Result<User, AuthError> {
    let mut tx = UserTx::begin(pool, user_id).await?;
    let user = load_user(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(user)
}

/// A live session as the account page lists it.
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The user's live sessions, newest first.
pub async fn list_sessions(
    state: &AuthState,
    user_id: Uuid,
) -> Result<Vec<SessionInfo>, AuthError> {
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    let rows = sqlx::query_as!(
        SessionInfo,
        "SELECT id, created_at, host(ip) AS ip, user_agent FROM app.sessions
         WHERE user_id = $1 AND revoked_at IS NULL AND not_after > $2 ORDER BY created_at DESC",
        user_id,
        state.clock.now()
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// This session.
    Local,
    /// Every session of the user.
    Global,
    /// Every session but this one.
    Others,
}

pub async fn logout(
    state: &AuthState,
    user_id: Uuid,
    session_id: Uuid,
    scope: LogoutScope,
) -> Result<u64, AuthError> {
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    let (all, except) = match scope {
        LogoutScope::Local => (false, None),
        LogoutScope::Global => (true, None),
        LogoutScope::Others => (true, Some(session_id)),
    };
    let ended = sqlx::query!(
        "UPDATE app.sessions SET revoked_at = $2, revoked_reason = 'logout'
         WHERE user_id = $1 AND revoked_at IS NULL AND ($3 OR id = $4) AND id IS DISTINCT FROM $5",
        user_id,
        now,
        all,
        session_id,
        except
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "logout", user_id = %user_id, scope = ?scope, sessions = ended, "signed out");
    Ok(ended)
}
