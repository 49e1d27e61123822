//! JSON Web Tokens for LeadGen's access tokens: HS256 with a key ring.
//!
//! Written here rather than taken from a general JWT crate on purpose. The general crates must
//! support every algorithm, so they carry RSA and EC code (one of them through an RSA crate with an
//! unfixed timing advisory) and leave the algorithm allow-list to each caller, which is where
//! `alg: none` and key-confusion bugs come from. LeadGen's tokens are only ever HS256, so this
//! module implements exactly that: the header must name an allowed algorithm that this module
//! implements, a known `kid`, and the signature is compared in constant time before any claim is
//! trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The one algorithm implemented.
pub const HS256: &str = "HS256";

/// A signing key with its id.
pub struct Key {
    kid: String,
    secret: Vec<u8>,
}

impl Key {
    /// A key from secret bytes (at least 32); the id is derived from the secret, so the same
    /// secret always has the same `kid` on every instance.
    pub fn new(secret: &[u8]) -> Result<Self, JwtError> {
        if secret.len() < 32 {
            return Err(JwtError::WeakKey);
        }
        let kid = hex(&Sha256::digest([b"leadgen jwt kid\0".as_slice(), secret].concat())[..8]);
        Ok(Self {
            kid,
            secret: secret.to_vec(),
        })
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key {{ kid: {:?}, secret: [redacted] }}", self.kid)
    }
}

/// The newest key signs; all keys verify (old ones until their tokens have expired).
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    /// `keys[0]` signs.
    pub fn new(keys: Vec<Key>) -> Result<Self, JwtError> {
        if keys.is_empty() {
            return Err(JwtError::WeakKey);
        }
        Ok(Self { keys })
    }

    fn signing(&self) -> &Key {
        &self.keys[0]
    }

    fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Validation {
    pub algorithms: Vec<String>,
    pub issuer: String,
    pub audience: String,
    /// Longest `exp - iat` accepted, so a leaked key cannot mint long-lived tokens unnoticed.
    pub max_lifetime_secs: i64,
    pub leeway_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("signing keys must be at least 32 bytes")]
    WeakKey,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("unknown key id")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    #[error("token lifetime exceeds the maximum")]
    LifetimeTooLong,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &Key, signing_input: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key.secret).ok()?;
    m.update(signing_input);
    Some(m)
}

/// Signs `claims` with the ring's newest key.
pub fn sign<C: Serialize>(ring: &KeyRing, claims: &C) -> Result<String, JwtError> {
    let key = ring.signing();
    let header = serde_json::json!({ "alg": HS256, "typ": "JWT", "kid": key.kid });
    let header = B64.encode(serde_json::to_vec(&header).map_err(|_| JwtError::Malformed)?);
    let payload = B64.encode(serde_json::to_vec(claims).map_err(|_| JwtError::Malformed)?);
    let input = format!("{header}.{payload}");
    let sig = mac(key, input.as_bytes())
        .ok_or(JwtError::WeakKey)?
        .finalize()
        .into_bytes();
    Ok(format!("{input}.{}", B64.encode(sig)))
}

/// Verifies `token` at time `now` (seconds since the epoch) and returns its claims.
pub fn verify<C: DeserializeOwned>(
    ring: &KeyRing,
    token: &str,
    v: &Validation,
    now: i64,
) -> Result<C, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or(JwtError::Malformed)?;
    // Allowed by configuration *and* implemented here: anything else, `none` included, is refused.
    if alg != HS256 || !v.algorithms.iter().any(|a| a == alg) {
        return Err(JwtError::AlgorithmNotAllowed(alg.to_string()));
    }
    let kid = header
        .get("kid")
        .and_then(|k| k.as_str())
        .ok_or(JwtError::UnknownKey)?;
    let key = ring.find(kid).ok_or(JwtError::UnknownKey)?;
    let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
    let input_len = h.len() + 1 + p.len();
    mac(key, &token.as_bytes()[..input_len])
        .ok_or(JwtError::BadSignature)?
        .verify_slice(&sig)
        .map_err(|_| JwtError::BadSignature)?;

    let claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(p).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
    let num = |name: &'static str| {
        claims
            .get(name)
            .and_then(serde_json::Value::as_i64)
            .ok_or(JwtError::MissingClaim(name))
    };
    let exp = num("exp")?;
    let iat = num("iat")?;
    if now > exp + v.leeway_secs {
        return Err(JwtError::Expired);
    }
    if iat > now + v.leeway_secs {
        return Err(JwtError::NotYetValid);
    }
    if let Ok(nbf) = num("nbf")
        && nbf > now + v.leeway_secs
    {
        return Err(JwtError::NotYetValid);
    }
    if exp - iat > v.max_lifetime_secs {
        return Err(JwtError::LifetimeTooLong);
    }
    if claims.get("iss").and_then(|i| i.as_str()) != Some(v.issuer.as_str()) {
        return Err(JwtError::WrongIssuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == &v.audience,
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str() == Some(v.audience.as_str()))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::WrongAudience);
    }
    serde_json::from_value(claims).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(secret: &[u8]) -> KeyRing {
        KeyRing::new(vec![Key::new(secret).unwrap()]).unwrap()
    }

    fn validation() -> Validation {
        Validation {
            algorithms: vec![HS256.into()],
            issuer: "https://leadgen.test/auth/v1".into(),
            audience: "authenticated".into(),
            max_lifetime_secs: 3600,
            leeway_secs: 0,
        }
    }

    fn claims(iat: i64, exp: i64) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://leadgen.test/auth/v1", "aud": "authenticated", "sub": "u1",
            "iat": iat, "exp": exp, "role": "authenticated", "session_id": "s1",
        })
    }

    const NOW: i64 = 1_800_000_000;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-secret";

    /// Builds a token with any header and signature bytes, as an attacker would.
    fn forge(
        header: serde_json::Value,
        claims: &serde_json::Value,
        sign_with: Option<(&[u8], bool)>,
    ) -> String {
        let h = B64.encode(serde_json::to_vec(&header).unwrap());
        let p = B64.encode(serde_json::to_vec(claims).unwrap());
        let input = format!("{h}.{p}");
        let sig = match sign_with {
            None => String::new(),
            Some((key, sha512)) => {
                if sha512 {
                    let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(key).unwrap();
                    m.update(input.as_bytes());
                    B64.encode(m.finalize().into_bytes())
                } else {
                    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
                    m.update(input.as_bytes());
                    B64.encode(m.finalize().into_bytes())
                }
            }
        };
        format!("{input}.{sig}")
    }

    #[test]
    fn round_trip_and_key_rotation() {
        let old = Key::new(SECRET).unwrap();
        let old_kid = old.kid().to_string();
        let token = sign(&KeyRing::new(vec![old]).unwrap(), &claims(NOW, NOW + 900)).unwrap();
        let c: serde_json::Value = verify(&ring(SECRET), &token, &validation(), NOW + 10).unwrap();
        assert_eq!(c["sub"], "u1");
        // After rotation the new key signs and the old one still verifies.
        let rotated = KeyRing::new(vec![
            Key::new(b"another secret that is long enough!!").unwrap(),
            Key::new(SECRET).unwrap(),
        ])
        .unwrap();
        let _: serde_json::Value = verify(&rotated, &token, &validation(), NOW + 10).unwrap();
        let fresh = sign(&rotated, &claims(NOW, NOW + 900)).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(fresh.split('.').next().unwrap()).unwrap()).unwrap();
        let new_kid = Key::new(b"another secret that is long enough!!")
            .unwrap()
            .kid()
            .to_string();
        assert_eq!(header["kid"], new_kid.as_str(), "the newest key signs");
        assert_ne!(new_kid, old_kid);
        // Once the old key leaves the ring, its tokens fail with UnknownKey.
        let only_new = KeyRing::new(vec![
            Key::new(b"another secret that is long enough!!").unwrap(),
        ])
        .unwrap();
        assert_eq!(
            verify::<serde_json::Value>(&only_new, &token, &validation(), NOW).unwrap_err(),
            JwtError::UnknownKey
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let r = ring(SECRET);
        let kid = Key::new(SECRET).unwrap().kid().to_string();
        let c = claims(NOW, NOW + 900);
        let v = validation();
        let check = |t: &str| verify::<serde_json::Value>(&r, t, &v, NOW);
        // alg none, with and without a signature.
        let none = forge(
            serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid}),
            &c,
            None,
        );
        assert_eq!(
            check(&none).unwrap_err(),
            JwtError::AlgorithmNotAllowed("none".into())
        );
        let none_cap = forge(
            serde_json::json!({"alg": "None", "kid": kid}),
            &c,
            Some((SECRET, false)),
        );
        assert!(matches!(
            check(&none_cap).unwrap_err(),
            JwtError::AlgorithmNotAllowed(_)
        ));
        // HS512 with the right secret: not allowed.
        let hs512 = forge(
            serde_json::json!({"alg": "HS512", "kid": kid}),
            &c,
            Some((SECRET, true)),
        );
        assert_eq!(
            check(&hs512).unwrap_err(),
            JwtError::AlgorithmNotAllowed("HS512".into())
        );
        // Key confusion: RS256 header, HMAC'd with a public key as the secret.
        let public_pem = b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n";
        let confused = forge(
            serde_json::json!({"alg": "RS256", "kid": kid}),
            &c,
            Some((public_pem, false)),
        );
        assert_eq!(
            check(&confused).unwrap_err(),
            JwtError::AlgorithmNotAllowed("RS256".into())
        );
        // HS256 claimed but signed with another secret.
        let wrong = forge(
            serde_json::json!({"alg": "HS256", "kid": kid}),
            &c,
            Some((b"guessed secret guessed secret guessed", false)),
        );
        assert_eq!(check(&wrong).unwrap_err(), JwtError::BadSignature);
        // Unknown or missing kid.
        let unknown = forge(
            serde_json::json!({"alg": "HS256", "kid": "deadbeef"}),
            &c,
            Some((SECRET, false)),
        );
        assert_eq!(check(&unknown).unwrap_err(), JwtError::UnknownKey);
        let no_kid = forge(
            serde_json::json!({"alg": "HS256"}),
            &c,
            Some((SECRET, false)),
        );
        assert_eq!(check(&no_kid).unwrap_err(), JwtError::UnknownKey);
        // Tampered payload keeps the old signature.
        let good = sign(&r, &c).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = B64.encode(
            serde_json::to_vec(&claims(NOW, NOW + 900).as_object().map(|o| {
                let mut o = o.clone();
                o.insert("sub".into(), "admin".into());
                o
            }))
            .unwrap(),
        );
        parts[1] = &evil;
        assert_eq!(check(&parts.join(".")).unwrap_err(), JwtError::BadSignature);
        // Structure.
        assert_eq!(check("a.b").unwrap_err(), JwtError::Malformed);
        assert_eq!(
            check(&format!("{good}.extra")).unwrap_err(),
            JwtError::Malformed
        );
        // The algorithm must also be allowed by configuration.
        let mut none_allowed = validation();
        none_allowed.algorithms = vec!["HS512".into()];
        assert!(matches!(
            verify::<serde_json::Value>(&r, &good, &none_allowed, NOW).unwrap_err(),
            JwtError::AlgorithmNotAllowed(_)
        ));
    }

    #[test]
    fn time_issuer_and_audience_are_checked() {
        let r = ring(SECRET);
        let v = validation();
        let t = sign(&r, &claims(NOW, NOW + 900)).unwrap();
        assert_eq!(
            verify::<serde_json::Value>(&r, &t, &v, NOW + 901).unwrap_err(),
            JwtError::Expired
        );
        assert_eq!(
            verify::<serde_json::Value>(&r, &t, &v, NOW - 60).unwrap_err(),
            JwtError::NotYetValid
        );
        let long = sign(&r, &claims(NOW, NOW + 7200)).unwrap();
        assert_eq!(
            verify::<serde_json::Value>(&r, &long, &v, NOW).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        let mut c = claims(NOW, NOW + 900);
        c["iss"] = "https://evil.test".into();
        assert_eq!(
            verify::<serde_json::Value>(&r, &sign(&r, &c).unwrap(), &v, NOW).unwrap_err(),
            JwtError::WrongIssuer
        );
        let mut c = claims(NOW, NOW + 900);
        c["aud"] = serde_json::json!(["service_role"]);
        assert_eq!(
            verify::<serde_json::Value>(&r, &sign(&r, &c).unwrap(), &v, NOW).unwrap_err(),
            JwtError::WrongAudience
        );
        let mut c = claims(NOW, NOW + 900);
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verify::<serde_json::Value>(&r, &sign(&r, &c).unwrap(), &v, NOW).unwrap_err(),
            JwtError::MissingClaim("exp")
        );
        assert_eq!(Key::new(b"short").unwrap_err(), JwtError::WeakKey);
        assert!(!format!("{:?}", Key::new(SECRET).unwrap()).contains("secret\""));
    }
}
