//! Mailed sign-in and the PKCE flow, as Supabase clients use them:
//!
//! - `POST /otp` mails a one-time link and a six-digit code to an existing account. The answer,
//!   and its timing, are the same for an address without an account, and an address receives at
//!   most one such mail a minute, so the endpoint neither reveals accounts nor floods a mailbox.
//! - `GET /reauthenticate` mails a six-digit nonce that lets `PUT /user` set a new password
//!   without the current one.
//! - A flow started by a PKCE client (a `code_challenge`, S256 only) ends at the application's
//!   `redirect_to` with a short-lived authorization code; `POST /token?grant_type=pkce` trades it
//!   for the session once, and only with the code verifier.
//!
//! Codes are stored as the SHA-256 of user id and code, links as the SHA-256 of the token, and
//! wrong codes count against the same progressive throttle as wrong passwords.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::service::{Origin, mail_in_background, send_mail};
use super::throttle;
use super::tokens::{random_token, token_hash};
use super::{AuthError, AuthState, EmailAddress};
use crate::db::UserTx;
use crate::mail::Mail;

/// How long mailed sign-in links, codes and nonces work.
pub const CODE_TTL_SECS: i64 = 600;
/// Least time between two sign-in (or nonce) mails to the same account.
pub const RESEND_INTERVAL_SECS: i64 = 60;
/// How long an authorization code waits for its exchange.
const AUTH_CODE_TTL_SECS: i64 = 300;
const AUTH_CODE_AAD: &[u8] = b"leadgen pkce session v1";

/// The challenge of a PKCE client: `BASE64URL(SHA-256(verifier))`.
#[derive(Debug, Clone)]
pub struct Pkce(String);

impl Pkce {
    /// Both parameters or neither. Only S256: `plain` would put the verifier itself in the URL.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Option<Self>, AuthError> {
        match (challenge, method) {
            (None | Some(""), None | Some("")) => Ok(None),
            (Some(c), Some(m)) if m.eq_ignore_ascii_case("s256") => {
                if c.len() == 43
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    Ok(Some(Self(c.to_string())))
                } else {
                    Err(AuthError::BadRequest(
                        "code_challenge: must be the base64url SHA-256 of the code verifier (43 characters)".into(),
                    ))
                }
            }
            (Some(_), Some(m)) => Err(AuthError::BadRequest(format!(
                "code_challenge_method: {m:?} is not supported; use s256"
            ))),
            (Some(_), None) => Err(AuthError::BadRequest(
                "code_challenge_method is required with code_challenge".into(),
            )),
            (None, Some(_)) => Err(AuthError::BadRequest(
                "code_challenge is required with code_challenge_method".into(),
            )),
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn verifies(challenge: &str, verifier: &str) -> bool {
        // RFC 7636: 43 to 128 unreserved characters.
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        let computed = B64.encode(Sha256::digest(verifier.as_bytes()));
        well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
    }
}

/// Where a flow may send the browser back: the site itself, or a URL the operator listed in
/// `auth.redirect_urls` (by prefix). Anything else falls back to the site, as Supabase does, so
/// a link can never carry a code to a stranger's host.
#[must_use]
pub fn redirect_target(state: &AuthState, requested: Option<&str>) -> String {
    let site = state.config.site_url();
    let Some(wanted) = requested.filter(|r| !r.is_empty()) else {
        return site;
    };
    let Ok(url) = url::Url::parse(wanted) else {
        return site;
    };
    let same_origin = url::Url::parse(&site).is_ok_and(|s| s.origin() == url.origin());
    let listed = state
        .config
        .auth
        .redirect_urls
        .iter()
        .any(|p| !p.is_empty() && url.as_str().starts_with(p.as_str()));
    if (same_origin || listed) && matches!(url.scheme(), "https" | "http") {
        url.into()
    } else {
        site
    }
}

/// `target` with one more query parameter.
#[must_use]
pub fn with_query(target: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(target) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.into()
        }
        Err(_) => target.to_string(),
    }
}

fn code_hash(user_id: Uuid, code: &str) -> Vec<u8> {
    token_hash(&format!("{user_id}:{code}"))
}

fn six_digits() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// Whether `code` looks like a mailed six-digit code (rather than a link token).
#[must_use]
pub fn is_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// The account of `email` and whether its address is confirmed, if there is one.
async fn find_account(
    state: &AuthState,
    email: &EmailAddress,
) -> Result<Option<(Uuid, bool)>, AuthError> {
    let found = sqlx::query!(
        "SELECT user_id AS \"user_id!\", email_confirmed_at FROM app.auth_find_account($1)",
        email.as_str()
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(found.map(|a| (a.user_id, a.email_confirmed_at.is_some())))
}

/// Mails a sign-in link and code to the account of `email`, if there is one. `create_user` is
/// accepted for the client's sake: accounts are created by sign-up, with a password.
pub async fn request_otp(
    state: &AuthState,
    email: &str,
    pkce: Option<Pkce>,
    redirect_to: Option<String>,
) -> Result<(), AuthError> {
    let email = EmailAddress::parse(email)?;
    let Some((user_id, _)) = find_account(state, &email).await? else {
        tracing::info!(target: "leadgen::audit", action = "otp_unknown_email", "sign-in link asked for an unknown address");
        return Ok(());
    };
    let state = state.clone();
    mail_in_background("sign-in link", user_id, async move {
        send_otp(&state, user_id, email.as_str(), pkce, redirect_to).await
    });
    Ok(())
}

/// Mails of `purpose` sent to the user in the last minute, and the seconds until the newest of
/// them is a minute old.
async fn mailed_last_minute(
    tx: &mut UserTx,
    user_id: Uuid,
    purpose: &str,
    now: time::OffsetDateTime,
) -> Result<(i64, i64), AuthError> {
    let since = now - time::Duration::seconds(RESEND_INTERVAL_SECS);
    let r = sqlx::query!(
        "SELECT count(*) AS \"n!\", max(created_at) AS newest FROM app.one_time_tokens
         WHERE user_id = $1 AND purpose = $2 AND created_at > $3",
        user_id,
        purpose,
        since
    )
    .fetch_one(&mut **tx)
    .await?;
    let left = r
        .newest
        .map_or(0, |t| RESEND_INTERVAL_SECS - (now - t).whole_seconds());
    Ok((r.n, left.max(0)))
}

async fn send_otp(
    state: &AuthState,
    user_id: Uuid,
    email: &str,
    pkce: Option<Pkce>,
    redirect_to: Option<String>,
) -> Result<(), AuthError> {
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    if mailed_last_minute(&mut tx, user_id, "magiclink", now)
        .await?
        .0
        > 0
    {
        tracing::info!(target: "leadgen::audit", action = "otp_resend_too_soon", user_id = %user_id, "sign-in link not sent again within a minute");
        return Ok(());
    }
    // A new link and code replace any earlier ones.
    sqlx::query!(
        "UPDATE app.one_time_tokens SET used_at = $2
         WHERE user_id = $1 AND purpose IN ('magiclink', 'email_otp') AND used_at IS NULL",
        user_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    let token = random_token();
    let code = six_digits();
    let expires = now + time::Duration::seconds(CODE_TTL_SECS);
    sqlx::query!(
        "INSERT INTO app.one_time_tokens
             (token_hash, user_id, purpose, created_at, expires_at, code_challenge, redirect_to)
         VALUES ($1, $2, 'magiclink', $3, $4, $5, $6), ($7, $2, 'email_otp', $3, $4, NULL, NULL)",
        token_hash(&token),
        user_id,
        now,
        expires,
        pkce.as_ref().map(Pkce::as_str),
        redirect_to,
        code_hash(user_id, &code),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let link = format!(
        "{}/auth/v1/verify?token={token}&type=magiclink",
        state.config.site_url()
    );
    let mail = Mail {
        to: email.to_string(),
        subject: "Your LeadGen sign-in link".into(),
        text: format!(
            "To sign in to LeadGen, open:\n\n{link}\n\nor enter this code: {code}\n\n\
             Sign-in code (token hash for API clients): {}\n\n\
             The link and the code work once and expire in {} minutes. If you did not ask to sign in, ignore this message.\n",
            hex::encode(token_hash(&token)),
            CODE_TTL_SECS / 60
        ),
    };
    send_mail(state, &mail, now).await?;
    tracing::info!(target: "leadgen::audit", action = "otp_requested", user_id = %user_id, "sign-in link mailed");
    Ok(())
}

/// `POST /resend` for a sign-up: a new confirmation mail for an account that is not confirmed
/// yet. Like `/otp`, the answer is the same for any address; an address gets its sign-up mail and
/// one more a minute.
pub async fn resend_confirmation(state: &AuthState, email: &str) -> Result<(), AuthError> {
    let email = EmailAddress::parse(email)?;
    let Some((user_id, false)) = find_account(state, &email).await? else {
        tracing::info!(target: "leadgen::audit", action = "resend_not_pending", "confirmation resend for an address with nothing to confirm");
        return Ok(());
    };
    let state = state.clone();
    mail_in_background("confirmation", user_id, async move {
        send_confirmation(&state, user_id, email.as_str()).await
    });
    Ok(())
}

async fn send_confirmation(state: &AuthState, user_id: Uuid, email: &str) -> Result<(), AuthError> {
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    // The sign-up mail and one resend may go out in the same minute; no more.
    if mailed_last_minute(&mut tx, user_id, "confirmation", now)
        .await?
        .0
        >= 2
    {
        tracing::info!(target: "leadgen::audit", action = "resend_too_soon", user_id = %user_id, "confirmation not sent again within a minute");
        return Ok(());
    }
    let token = random_token();
    sqlx::query!(
        "INSERT INTO app.one_time_tokens (token_hash, user_id, purpose, created_at, expires_at)
         VALUES ($1, $2, 'confirmation', $3, $4)",
        token_hash(&token),
        user_id,
        now,
        now + time::Duration::seconds(state.config.auth.confirmation_ttl_secs)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mail = super::service::confirmation_mail(state, email, &token);
    send_mail(state, &mail, now).await?;
    tracing::info!(target: "leadgen::audit", action = "confirmation_resent", user_id = %user_id, "confirmation mail sent again");
    Ok(())
}

/// The hash under which the six-digit code mailed to `email` is stored, after the throttle
/// allowed a try. Unknown addresses get a hash that matches nothing, so they fail like a wrong code.
pub async fn code_lookup(
    state: &AuthState,
    email: &str,
    code: &str,
    origin: &Origin,
) -> Result<(Vec<u8>, throttle::Keys), AuthError> {
    let keys = throttle::Keys::new(email, origin.ip);
    let wait = throttle::wait_secs(&state.pool, &keys, state.clock.now()).await?;
    if wait > 0 {
        return Err(AuthError::TooManyAttempts(wait));
    }
    let found = match EmailAddress::parse(email) {
        Ok(e) => find_account(state, &e).await?.map(|(id, _)| id),
        Err(_) => None,
    };
    Ok((code_hash(found.unwrap_or(Uuid::nil()), code), keys))
}

/// Mails the signed-in user a nonce for `PUT /user`.
pub async fn reauthenticate(state: &AuthState, who: &super::AuthUser) -> Result<(), AuthError> {
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let (sent, left) = mailed_last_minute(&mut tx, who.user_id, "reauthentication", now).await?;
    if sent > 0 {
        return Err(AuthError::TooManyAttempts(left.unsigned_abs().max(1)));
    }
    sqlx::query!(
        "UPDATE app.one_time_tokens SET used_at = $2
         WHERE user_id = $1 AND purpose = 'reauthentication' AND used_at IS NULL",
        who.user_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    let nonce = six_digits();
    sqlx::query!(
        "INSERT INTO app.one_time_tokens (token_hash, user_id, purpose, created_at, expires_at)
         VALUES ($1, $2, 'reauthentication', $3, $4)",
        code_hash(who.user_id, &nonce),
        who.user_id,
        now,
        now + time::Duration::seconds(CODE_TTL_SECS)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mail = Mail {
        to: who.claims.email.clone(),
        subject: "Confirm it is you".into(),
        text: format!(
            "Enter this code in LeadGen to confirm it is you: {nonce}\n\n\
             It works once and expires in {} minutes. If you did not ask for it, change your password: someone may be using your session.\n",
            CODE_TTL_SECS / 60
        ),
    };
    send_mail(state, &mail, now).await?;
    tracing::info!(target: "leadgen::audit", action = "reauthentication_requested", user_id = %who.user_id, "reauthentication nonce mailed");
    Ok(())
}

/// Spends a reauthentication nonce; wrong ones count against the sign-in throttle.
pub async fn check_nonce(
    state: &AuthState,
    who: &super::AuthUser,
    nonce: &str,
    origin: &Origin,
) -> Result<(), AuthError> {
    let now = state.clock.now();
    let keys = throttle::Keys::new(&who.claims.email, origin.ip);
    let wait = throttle::wait_secs(&state.pool, &keys, now).await?;
    if wait > 0 {
        return Err(AuthError::TooManyAttempts(wait));
    }
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let used = sqlx::query!(
        "UPDATE app.one_time_tokens SET used_at = $3
         WHERE token_hash = $1 AND user_id = $2 AND purpose = 'reauthentication'
           AND used_at IS NULL AND expires_at > $3",
        code_hash(who.user_id, nonce.trim()),
        who.user_id,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if used != 1 {
        throttle::record_failure(&state.pool, &keys, now).await?;
        return Err(AuthError::ReauthenticationNotValid);
    }
    Ok(())
}

/// Stores a session for a PKCE client and returns the authorization code that stands for it.
pub async fn issue_auth_code(
    state: &AuthState,
    user_id: Uuid,
    session_id: Uuid,
    challenge: &str,
    session_json: &serde_json::Value,
) -> Result<String, AuthError> {
    let now = state.clock.now();
    let code = random_token();
    let plain = serde_json::to_vec(session_json).map_err(|e| AuthError::Internal(e.into()))?;
    let sealed = leadgen_crypto::seal::seal(state.auth.seal_key(), &plain, AUTH_CODE_AAD)
        .map_err(|e| AuthError::Internal(anyhow::anyhow!("sealing a session: {e}")))?;
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    sqlx::query!(
        "INSERT INTO app.auth_codes
             (code_hash, user_id, session_id, code_challenge, sealed_session, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        token_hash(&code),
        user_id,
        session_id,
        challenge,
        sealed,
        now,
        now + time::Duration::seconds(AUTH_CODE_TTL_SECS)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(code)
}

/// `grant_type=pkce`: the session behind `auth_code`, once, to the holder of the verifier. A
/// wrong verifier spends the code and ends the session it stood for.
pub async fn exchange(
    state: &AuthState,
    auth_code: &str,
    verifier: &str,
) -> Result<serde_json::Value, AuthError> {
    let now = state.clock.now();
    let hash = token_hash(auth_code);
    let user_id = sqlx::query_scalar!("SELECT app.auth_find_code($1)", hash)
        .fetch_one(&state.pool)
        .await?
        .ok_or(AuthError::FlowStateNotFound)?;
    let mut tx = UserTx::begin(&state.pool, user_id).await?;
    let row = sqlx::query!(
        "UPDATE app.auth_codes SET used_at = $2
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING session_id, code_challenge, sealed_session",
        hash,
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Err(AuthError::FlowStateNotFound);
    };
    if !Pkce::verifies(&row.code_challenge, verifier) {
        sqlx::query!(
            "UPDATE app.sessions SET revoked_at = $2, revoked_reason = 'pkce_verifier_mismatch'
             WHERE id = $1 AND revoked_at IS NULL",
            row.session_id,
            now
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(target: "leadgen::audit", action = "pkce_verifier_mismatch", user_id = %user_id, "authorization code presented with the wrong verifier; its session ended");
        return Err(AuthError::BadCodeVerifier);
    }
    tx.commit().await?;
    let plain =
        leadgen_crypto::seal::open(state.auth.seal_key(), &row.sealed_session, AUTH_CODE_AAD)
            .map_err(|e| AuthError::Internal(anyhow::anyhow!("opening a sealed session: {e}")))?;
    let session = serde_json::from_slice(&plain).map_err(|e| AuthError::Internal(e.into()))?;
    tracing::info!(target: "leadgen::audit", action = "pkce_code_exchanged", user_id = %user_id, "authorization code exchanged for its session");
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenge_matches_only_its_verifier() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(Pkce::verifies(challenge, verifier));
        assert!(!Pkce::verifies(challenge, &verifier.replace('d', "e")));
        assert!(!Pkce::verifies(challenge, "short"));
        assert!(
            Pkce::parse(Some(challenge), Some("S256"))
                .unwrap()
                .is_some()
        );
        assert!(Pkce::parse(Some(challenge), Some("plain")).is_err());
        assert!(Pkce::parse(Some("x"), Some("s256")).is_err());
        assert!(Pkce::parse(None, None).unwrap().is_none());
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            assert!(is_code(&six_digits()));
        }
        assert!(!is_code("12345a"));
    }
}
