//! OpenID Connect ID tokens: the checks a relying party owes the provider's answer.
//!
//! LeadGen signs people in with Google and LinkedIn, which both sign ID tokens with RS256. Only
//! RS256 is accepted, so no header can talk the verifier into `none`, an HMAC keyed with a
//! public key, or an algorithm the provider never uses. Verification goes through ring, which the
//! TLS stack already carries. The caller fetches the provider's JWKS; this module does no I/O.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The only signature algorithm accepted on ID tokens.
pub const RS256: &str = "RS256";

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// A provider's published signing keys.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One key of a JWKS. Keys of other types are kept but never match.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
}

impl Jwk {
    fn usable_rs256(&self) -> bool {
        self.kty == "RSA"
            && self.alg.as_deref().is_none_or(|a| a == RS256)
            && self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.n.is_some()
            && self.e.is_some()
    }
}

/// What the ID token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The configured issuer, compared byte for byte.
    pub issuer: &'a str,
    /// Our client id, which must be an audience (and the authorized party when there are several).
    pub client_id: &'a str,
    /// The nonce sent with the authorization request.
    pub nonce: &'a str,
    /// Unix time now.
    pub now: i64,
}

/// The claims LeadGen uses from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the ID token is not a well-formed JWT")]
    Malformed,
    #[error("the ID token is signed with {0:?}; only RS256 is accepted")]
    Algorithm(String),
    #[error("no key of the provider's JWKS matches the ID token")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token was issued by {0:?}, not by the configured issuer")]
    Issuer(String),
    #[error("the ID token is meant for another client")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is dated in the future")]
    IssuedInFuture,
    #[error("the ID token's nonce does not match this sign-in")]
    Nonce,
    #[error("the ID token has no subject")]
    Subject,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `email_verified` is a JSON boolean at Google and has been seen as the string "true" elsewhere.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    aud: Audience,
    #[serde(default)]
    azp: Option<String>,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Flag>,
    #[serde(default)]
    name: Option<String>,
}

/// Verifies an ID token's signature against `jwks` and its claims against `expect`.
///
/// # Errors
/// The first check that fails. [`IdTokenError::UnknownKey`] means the provider may have rotated
/// its keys: the caller may fetch the JWKS again and retry once.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    expect: &Expect<'_>,
) -> Result<IdClaims, IdTokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed);
    };
    let header: Header = decode_json(h)?;
    if header.alg != RS256 {
        return Err(IdTokenError::Algorithm(header.alg));
    }
    let usable: Vec<&Jwk> = jwks.keys.iter().filter(|k| k.usable_rs256()).collect();
    let key = match &header.kid {
        Some(kid) => usable
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid.as_str())),
        // Without a kid the key is unambiguous only when the provider publishes exactly one.
        None if usable.len() == 1 => usable.first(),
        None => None,
    }
    .ok_or(IdTokenError::UnknownKey)?;
    let n = B64
        .decode(key.n.as_deref().unwrap_or_default())
        .map_err(|_| IdTokenError::UnknownKey)?;
    let e = B64
        .decode(key.e.as_deref().unwrap_or_default())
        .map_err(|_| IdTokenError::UnknownKey)?;
    let signature = B64.decode(s).map_err(|_| IdTokenError::Malformed)?;
    let signed = &token[..h.len() + 1 + p.len()];
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .map_err(|_| IdTokenError::Signature)?;

    let claims: Claims = decode_json(p)?;
    if claims.iss != expect.issuer {
        return Err(IdTokenError::Issuer(claims.iss));
    }
    let audience_ok = match &claims.aud {
        Audience::One(a) => a == expect.client_id,
        Audience::Many(list) => {
            list.iter().any(|a| a == expect.client_id)
                && (list.len() == 1 || claims.azp.as_deref() == Some(expect.client_id))
        }
    };
    if !audience_ok || claims.azp.as_deref().is_some_and(|a| a != expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    if claims.exp + LEEWAY_SECS <= expect.now {
        return Err(IdTokenError::Expired);
    }
    if claims.iat > expect.now + LEEWAY_SECS {
        return Err(IdTokenError::IssuedInFuture);
    }
    let nonce_ok = claims
        .nonce
        .as_deref()
        .is_some_and(|n| bool::from(n.as_bytes().ct_eq(expect.nonce.as_bytes())));
    if !nonce_ok {
        return Err(IdTokenError::Nonce);
    }
    let subject = claims
        .sub
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(IdTokenError::Subject)?;
    let email_verified = match claims.email_verified {
        Some(Flag::Bool(b)) => b,
        Some(Flag::Text(t)) => t == "true",
        None => false,
    };
    Ok(IdClaims {
        subject,
        email: claims.email,
        email_verified,
        name: claims.name,
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, IdTokenError> {
    let bytes = B64.decode(part).map_err(|_| IdTokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
    use serde_json::{Value, json};

    // Two 2048-bit RSA keys made for these tests only (PKCS#1 DER, base64).
    fn key(name: &str) -> RsaKeyPair {
        let b64 = match name {
            "a" => include_str!("../testdata/rsa-a.pkcs1.b64"),
            _ => include_str!("../testdata/rsa-b.pkcs1.b64"),
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap();
        RsaKeyPair::from_der(&der).unwrap()
    }

    fn jwk(k: &RsaKeyPair, kid: &str) -> Jwk {
        let public = k.public_key();
        let comps: ring::rsa::PublicKeyComponents<Vec<u8>> = public.into();
        Jwk {
            kty: "RSA".into(),
            kid: Some(kid.into()),
            alg: Some(RS256.into()),
            use_: Some("sig".into()),
            n: Some(B64.encode(&comps.n)),
            e: Some(B64.encode(&comps.e)),
        }
    }

    fn sign(k: &RsaKeyPair, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut sig = vec![0; k.public().modulus_len()];
        k.sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{signed}.{}", B64.encode(sig))
    }

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://accounts.google.com";

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            client_id: "leadgen-client",
            nonce: "n-123",
            now: NOW,
        }
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "sub": "10769150350006150715113082367", "aud": "leadgen-client",
            "exp": NOW + 3600, "iat": NOW, "nonce": "n-123",
            "email": "ann@example.com", "email_verified": true, "name": "Ann"
        })
    }

    fn header() -> Value {
        json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})
    }

    fn jwks() -> Jwks {
        Jwks {
            keys: vec![jwk(&key("a"), "k1")],
        }
    }

    fn check(header: &Value, claims: &Value) -> Result<IdClaims, IdTokenError> {
        verify_id_token(&sign(&key("a"), header, claims), &jwks(), &expect())
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    #[test]
    fn a_good_token_yields_its_claims() {
        let c = check(&header(), &claims()).unwrap();
        assert_eq!(c.subject, "10769150350006150715113082367");
        assert_eq!(c.email.as_deref(), Some("ann@example.com"));
        assert!(c.email_verified);
        assert_eq!(c.name.as_deref(), Some("Ann"));
        // LinkedIn-style string flag, and several audiences with us as authorized party.
        let c = check(
            &header(),
            &with(
                with(claims(), "email_verified", json!("true")),
                "aud",
                json!(["leadgen-client", "other"]),
            ),
        );
        assert_eq!(c.unwrap_err(), IdTokenError::Audience, "azp missing");
        let mut multi = with(claims(), "aud", json!(["leadgen-client", "other"]));
        multi["azp"] = json!("leadgen-client");
        multi["email_verified"] = json!("true");
        assert!(check(&header(), &multi).unwrap().email_verified);
    }

    #[test]
    fn signature_and_key_checks() {
        // Signed by a key the provider does not publish, under its kid.
        let forged = sign(&key("b"), &header(), &claims());
        assert_eq!(
            verify_id_token(&forged, &jwks(), &expect()).unwrap_err(),
            IdTokenError::Signature
        );
        // A kid the JWKS does not have: the caller refetches.
        assert_eq!(
            check(&json!({"alg": "RS256", "kid": "k9"}), &claims()).unwrap_err(),
            IdTokenError::UnknownKey
        );
        // No kid and one key: that key.
        assert!(check(&json!({"alg": "RS256"}), &claims()).is_ok());
        // A tampered payload.
        let good = sign(&key("a"), &header(), &claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = B64.encode(with(claims(), "sub", json!("admin")).to_string());
        parts[1] = &evil;
        assert_eq!(
            verify_id_token(&parts.join("."), &jwks(), &expect()).unwrap_err(),
            IdTokenError::Signature
        );
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let unsigned = format!(
            "{}.{}.",
            B64.encode(json!({"alg": "none"}).to_string()),
            B64.encode(claims().to_string())
        );
        assert_eq!(
            verify_id_token(&unsigned, &jwks(), &expect()).unwrap_err(),
            IdTokenError::Algorithm("none".into())
        );
        // HS256 keyed with the public modulus (the classic RS/HS confusion).
        use hmac::{Hmac, Mac};
        let h = json!({"alg": "HS256", "kid": "k1"});
        let signed = format!(
            "{}.{}",
            B64.encode(h.to_string()),
            B64.encode(claims().to_string())
        );
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(jwks().keys[0].n.as_deref().unwrap().as_bytes())
                .unwrap();
        mac.update(signed.as_bytes());
        let token = format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()));
        assert_eq!(
            verify_id_token(&token, &jwks(), &expect()).unwrap_err(),
            IdTokenError::Algorithm("HS256".into())
        );
        assert_eq!(
            check(&json!({"alg": "RS512", "kid": "k1"}), &claims()).unwrap_err(),
            IdTokenError::Algorithm("RS512".into())
        );
        assert_eq!(
            verify_id_token("a.b", &jwks(), &expect()).unwrap_err(),
            IdTokenError::Malformed
        );
    }

    #[test]
    fn claim_checks() {
        let cases = [
            (
                with(claims(), "iss", json!("https://accounts.google.com/")),
                IdTokenError::Issuer("https://accounts.google.com/".into()),
            ),
            (
                with(claims(), "aud", json!("someone-else")),
                IdTokenError::Audience,
            ),
            (
                with(claims(), "azp", json!("someone-else")),
                IdTokenError::Audience,
            ),
            (
                with(claims(), "exp", json!(NOW - LEEWAY_SECS)),
                IdTokenError::Expired,
            ),
            (
                with(claims(), "iat", json!(NOW + LEEWAY_SECS + 1)),
                IdTokenError::IssuedInFuture,
            ),
            (with(claims(), "nonce", json!("n-124")), IdTokenError::Nonce),
            (with(claims(), "nonce", Value::Null), IdTokenError::Nonce),
            (with(claims(), "sub", json!("")), IdTokenError::Subject),
        ];
        for (c, want) in cases {
            assert_eq!(check(&header(), &c).unwrap_err(), want, "{c}");
        }
        // Within the leeway an expired token still passes.
        assert!(check(&header(), &with(claims(), "exp", json!(NOW - 30))).is_ok());
        // An absent email_verified is false, never assumed.
        let mut c = claims();
        c.as_object_mut().unwrap().remove("email_verified");
        assert!(!check(&header(), &c).unwrap().email_verified);
    }
}
