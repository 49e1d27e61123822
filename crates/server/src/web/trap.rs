//! Bot traps for forms anyone may post (the early-access form, capture forms on customers' sites,
//! vulnerability reports): a honeypot field and a minimum fill time.
//!
//! - The honeypot is a text field people never see (hidden by the stylesheet's `.hp` rule, not by
//!   an attribute a bot could read as "skip me") and never fill; bots that fill every field do.
//! - The fill time is a stamp signed into the form when it is served: the time it was issued and
//!   an HMAC under the application key over the form's purpose and that time. A post sooner than
//!   the minimum after the stamp, or with a stamp that is forged, from another form or too old,
//!   fails the trap.
//!
//! A post that trips a trap gets the same answer as one that passes, so the bot learns nothing;
//! the caller stores nothing but a counter. Purposes keep one form's stamp from passing another.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

/// The honeypot field's name: a plausible field that no form of LeadGen maps to anything.
pub const HONEYPOT_FIELD: &str = "homepage_url";
/// The field that carries the signed stamp.
pub const STAMP_FIELD: &str = "lg_stamp";

/// How a post fared against the traps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Neither trap tripped.
    Passed,
    /// The honeypot field was filled.
    Honeypot,
    /// Posted sooner than the minimum fill time after the form was served.
    TooFast,
    /// No stamp, a forged one, one of another form or one older than allowed.
    BadStamp,
}

impl Verdict {
    /// The label of the spam counter (`honeypot`, `too_fast`, `bad_stamp`), `None` when passed.
    #[must_use]
    pub fn spam_reason(self) -> Option<&'static str> {
        match self {
            Self::Passed => None,
            Self::Honeypot => Some("honeypot"),
            Self::TooFast => Some("too_fast"),
            Self::BadStamp => Some("bad_stamp"),
        }
    }
}

/// The rules of one form: how soon a person can have filled it, how long a served form stays
/// valid.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub min_fill: Duration,
    pub max_age: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_fill: Duration::seconds(3),
            max_age: Duration::hours(24),
        }
    }
}

fn tag(app_key: &SecretString, purpose: &str, issued: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(app_key.expose_secret().as_bytes()) {
        m.update(b"leadgen form stamp v1\0");
        m.update(purpose.as_bytes());
        m.update(b"\0");
        m.update(&issued.to_be_bytes());
        out.copy_from_slice(&m.finalize().into_bytes()[..16]);
    }
    out
}

/// The stamp to put in the form `purpose` served at `now`: `<unix seconds>.<tag>`.
#[must_use]
pub fn stamp(app_key: &SecretString, purpose: &str, now: OffsetDateTime) -> String {
    let issued = now.unix_timestamp();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{issued}.{}", b64.encode(tag(app_key, purpose, issued)))
}

/// Judges a post of the form `purpose`: the honeypot first, then the stamp.
#[must_use]
pub fn check(
    app_key: &SecretString,
    purpose: &str,
    stamp: Option<&str>,
    honeypot: Option<&str>,
    now: OffsetDateTime,
    rules: Rules,
) -> Verdict {
    if honeypot.is_some_and(|v| !v.trim().is_empty()) {
        return Verdict::Honeypot;
    }
    let Some((issued, given)) = stamp.and_then(|s| s.split_once('.')) else {
        return Verdict::BadStamp;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return Verdict::BadStamp;
    };
    let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given) else {
        return Verdict::BadStamp;
    };
    let genuine: bool =
        subtle::ConstantTimeEq::ct_eq(given.as_slice(), tag(app_key, purpose, issued).as_slice())
            .into();
    if !genuine {
        return Verdict::BadStamp;
    }
    let age = Duration::seconds(now.unix_timestamp().saturating_sub(issued));
    if age > rules.max_age || age < -Duration::minutes(5) {
        return Verdict::BadStamp;
    }
    if age < rules.min_fill {
        return Verdict::TooFast;
    }
    Verdict::Passed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from("trap-test-key-0123456789abcdef".to_string())
    }

    #[test]
    fn a_person_passes_and_each_trap_trips() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let s = stamp(&key(), "early-access", t0);
        let rules = Rules::default();
        let at = |secs| t0 + Duration::seconds(secs);
        let judge = |s: Option<&str>, hp: Option<&str>, now| {
            check(&key(), "early-access", s, hp, now, rules)
        };
        assert_eq!(judge(Some(&s), Some(""), at(10)), Verdict::Passed);
        assert_eq!(judge(Some(&s), None, at(10)), Verdict::Passed);
        assert_eq!(
            judge(Some(&s), Some("http://spam"), at(10)),
            Verdict::Honeypot
        );
        assert_eq!(judge(Some(&s), None, at(1)), Verdict::TooFast);
        assert_eq!(judge(Some(&s), None, at(25 * 3600)), Verdict::BadStamp);
        assert_eq!(judge(None, None, at(10)), Verdict::BadStamp);
        // A stamp with its time moved back to look older is forged.
        let forged = s.replacen(&t0.unix_timestamp().to_string(), "1799999000", 1);
        assert_eq!(judge(Some(&forged), None, at(10)), Verdict::BadStamp);
        // Another form's stamp, or one under another key, does not pass.
        let other = stamp(&key(), "vdp", t0);
        assert_eq!(judge(Some(&other), None, at(10)), Verdict::BadStamp);
        let foreign = stamp(&SecretString::from("other".to_string()), "early-access", t0);
        assert_eq!(judge(Some(&foreign), None, at(10)), Verdict::BadStamp);
        assert_eq!(Verdict::TooFast.spam_reason(), Some("too_fast"));
    }
}
