//! DKIM signatures (RFC 6376; Ed25519 per RFC 8463) with relaxed/relaxed canonicalization.
//!
//! Written on `ring` rather than taken from lettre or mail-auth: both of their signers use the
//! `rsa` crate, which carries an unfixed timing side-channel advisory (RUSTSEC-2023-0071, the
//! Marvin attack) and signs several times slower than ring. A campaign signs every message it
//! sends, so the signer is built once per sending domain, shared across threads
//! ([`Signer`] is `Send + Sync`), and does no more work per message than hashing and one
//! private-key operation.
//!
//! RSA keys (2048 bits or more) are made outside LeadGen with
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; Ed25519 keys can be made
//! with [`generate_ed25519`]. [`DkimKey::dns_record`] gives the TXT record to publish at
//! `<selector>._domainkey.<domain>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use sha2::{Digest as _, Sha256};

/// Smallest RSA modulus accepted, in bits (RFC 8301 requires at least 1024; 2048 is what
/// mailbox providers expect now).
const MIN_RSA_BITS: usize = 2048;

/// Headers signed when present, each once, in this order.
const SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "reply-to",
];

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `rsa-sha256`.
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519Sha256,
}

impl Algorithm {
    fn tag(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

/// Why a key could not be loaded or a message not signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    /// The PEM text has no usable `PRIVATE KEY` or `RSA PRIVATE KEY` block.
    #[error("invalid PEM private key: {0}")]
    InvalidPem(&'static str),
    /// The DER is not an RSA or Ed25519 private key ring accepts.
    #[error("unsupported or invalid private key: {0}")]
    InvalidKey(String),
    /// The RSA key is smaller than 2048 bits.
    #[error("RSA key has {bits} bits; at least 2048 are required")]
    KeyTooSmall {
        /// The key's modulus size.
        bits: usize,
    },
    /// Key generation failed (the system random source failed).
    #[error("could not generate a key")]
    KeyGeneration,
    /// The signing domain is not a valid domain name.
    #[error("invalid DKIM domain {0:?}")]
    InvalidDomain(String),
    /// The selector is not a valid selector.
    #[error("invalid DKIM selector {0:?}")]
    InvalidSelector(String),
    /// The message has no header/body separator or a malformed header.
    #[error("malformed message: {0}")]
    MalformedMessage(&'static str),
    /// The message has no From header, which DKIM requires.
    #[error("message has no From header")]
    MissingFrom,
    /// The private-key operation failed.
    #[error("signing failed")]
    Signing,
}

enum KeyInner {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A DKIM private key: RSA (at least 2048 bits) or Ed25519.
pub struct DkimKey {
    inner: KeyInner,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimKey {
    /// Loads a PEM key: PKCS#8 (`PRIVATE KEY`, RSA or Ed25519) or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<DkimKey, DkimError> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => DkimKey::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => {
                let key =
                    RsaKeyPair::from_der(&der).map_err(|e| DkimError::InvalidKey(e.to_string()))?;
                DkimKey::rsa(key)
            }
            _ => Err(DkimError::InvalidPem(
                "expected a \"PRIVATE KEY\" or \"RSA PRIVATE KEY\" block",
            )),
        }
    }

    /// Loads a PKCS#8 DER key, RSA or Ed25519 (PKCS#8 v1 or v2).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<DkimKey, DkimError> {
        if let Ok(key) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(DkimKey {
                inner: KeyInner::Ed25519(key),
            });
        }
        let key = RsaKeyPair::from_pkcs8(der).map_err(|e| DkimError::InvalidKey(e.to_string()))?;
        DkimKey::rsa(key)
    }

    fn rsa(key: RsaKeyPair) -> Result<DkimKey, DkimError> {
        let bits = key.public().modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(DkimError::KeyTooSmall { bits });
        }
        Ok(DkimKey {
            inner: KeyInner::Rsa(key),
        })
    }

    /// The key's signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            KeyInner::Rsa(_) => Algorithm::RsaSha256,
            KeyInner::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// The DNS TXT record value publishing the public key.
    ///
    /// RSA: `v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>`; Ed25519:
    /// `v=DKIM1; k=ed25519; p=<base64 of the raw 32-byte key>` (RFC 8463).
    pub fn dns_record(&self) -> String {
        match &self.inner {
            KeyInner::Rsa(key) => format!(
                "v=DKIM1; k=rsa; p={}",
                B64.encode(rsa_spki(key.public_key().as_ref()))
            ),
            KeyInner::Ed25519(key) => format!(
                "v=DKIM1; k=ed25519; p={}",
                B64.encode(key.public_key().as_ref())
            ),
        }
    }
}

/// Wraps a PKCS#1 `RSAPublicKey` in a `SubjectPublicKeyInfo` with the rsaEncryption OID, the
/// form DKIM records publish.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    der_push(&mut body, 0x03, &bit_string);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_push(&mut out, 0x30, &body);
    out
}

/// Appends a DER TLV.
fn der_push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), DkimError> {
    let mut lines = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or(DkimError::InvalidPem("no BEGIN line"))?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(DkimError::InvalidPem(
                "encrypted PEM keys are not supported",
            ));
        }
        b64.push_str(line);
    }
    if !ended {
        return Err(DkimError::InvalidPem("no matching END line"));
    }
    let der = B64
        .decode(b64.as_bytes())
        .map_err(|_| DkimError::InvalidPem("invalid base64"))?;
    Ok((label, der))
}

/// Generates an Ed25519 key, returned as PKCS#8 PEM (`PRIVATE KEY`).
pub fn generate_ed25519() -> Result<String, DkimError> {
    let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| DkimError::KeyGeneration)?;
    let b64 = B64.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// Signs messages for one domain and selector.
pub struct Signer {
    domain: String,
    selector: String,
    key: DkimKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `d=domain` and `s=selector`, both checked for DNS label syntax.
    pub fn new(domain: &str, selector: &str, key: DkimKey) -> Result<Signer, DkimError> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if !valid_domain(domain) || !domain.contains('.') {
            return Err(DkimError::InvalidDomain(domain.to_owned()));
        }
        if !valid_domain(selector) {
            return Err(DkimError::InvalidSelector(selector.to_owned()));
        }
        Ok(Signer {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_ascii_lowercase(),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The complete `DKIM-Signature` header (folded, ending in CRLF) to prepend to `message`,
    /// signed at `timestamp` (unix seconds, the `t=` tag).
    ///
    /// `message` is the whole RFC 5322 message, CRLF line endings expected (bare LF is read as
    /// a line ending, as an SMTP relay would send it). From is required; To, Subject, Date,
    /// Message-ID, MIME-Version, Content-Type, List-Unsubscribe, List-Unsubscribe-Post and
    /// Reply-To are signed when present.
    pub fn sign(&self, message: &[u8], timestamp: i64) -> Result<String, DkimError> {
        let (headers, body) = split_message(message)?;
        let body_hash = Sha256::digest(canonical_body(body));

        let mut names = Vec::new();
        let mut signed = Vec::with_capacity(1024);
        for name in SIGNED_HEADERS {
            // A verifier matches each name in h= against the last instance of that header.
            if let Some(raw) = headers
                .iter()
                .rev()
                .find(|h| h.name.eq_ignore_ascii_case(name))
            {
                names.push(*name);
                canonical_header(&mut signed, raw.name, raw.value);
            } else if *name == "from" {
                return Err(DkimError::MissingFrom);
            }
        }

        let mut header = format!(
            "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={}; s={};\r\n\tt={}; h={};\r\n\tbh={};\r\n\tb=",
            self.key.algorithm().tag(),
            self.domain,
            self.selector,
            timestamp,
            names.join(":"),
            B64.encode(body_hash),
        );
        // The signature header itself is signed with an empty b= and no trailing CRLF.
        let (name, value) = header.split_at("DKIM-Signature".len());
        let value = &value[1..];
        let mut own = Vec::with_capacity(header.len());
        canonical_header(&mut own, name, value.as_bytes());
        own.truncate(own.len() - 2);
        signed.extend_from_slice(&own);

        let signature = match &self.key.inner {
            KeyInner::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &self.rng, &signed, &mut sig)
                    .map_err(|_| DkimError::Signing)?;
                sig
            }
            KeyInner::Ed25519(key) => key.sign(&Sha256::digest(&signed)).as_ref().to_vec(),
        };
        let b64 = B64.encode(signature);
        for (i, chunk) in b64.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                header.push_str("\r\n\t");
            }
            header.push_str(&String::from_utf8_lossy(chunk));
        }
        header.push_str("\r\n");
        Ok(header)
    }
}

/// A DNS name (or selector): dot-separated labels of letters, digits and hyphens, 1 to 63
/// characters, not starting or ending with a hyphen; at most 253 characters.
fn valid_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

struct RawHeader<'a> {
    name: &'a str,
    /// Everything after the colon, continuation lines included, without the final line ending.
    value: &'a [u8],
}

/// Splits a message into its header fields and body.
fn split_message(message: &[u8]) -> Result<(Vec<RawHeader<'_>>, &[u8]), DkimError> {
    let mut headers: Vec<RawHeader<'_>> = Vec::new();
    let mut pos = 0;
    let mut current: Option<(usize, usize)> = None; // (start of field, end of its last line)
    fn finish<'a>(headers: &mut Vec<RawHeader<'a>>, field: &'a [u8]) -> Result<(), DkimError> {
        let colon = field
            .iter()
            .position(|b| *b == b':')
            .ok_or(DkimError::MalformedMessage("header line without a colon"))?;
        let name = std::str::from_utf8(&field[..colon])
            .ok()
            .map(|n| n.trim_end_matches([' ', '\t']))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (33..=126).contains(&b)))
            .ok_or(DkimError::MalformedMessage("invalid header name"))?;
        headers.push(RawHeader {
            name,
            value: &field[colon + 1..],
        });
        Ok(())
    }
    loop {
        let Some(nl) = message[pos..].iter().position(|b| *b == b'\n') else {
            return Err(DkimError::MalformedMessage(
                "no empty line between header and body",
            ));
        };
        let line_end = pos + nl + 1;
        let content_end = if nl > 0 && message[pos + nl - 1] == b'\r' {
            pos + nl - 1
        } else {
            pos + nl
        };
        let line = &message[pos..content_end];
        if line.is_empty() {
            if let Some((start, end)) = current.take() {
                finish(&mut headers, &message[start..end])?;
            }
            return Ok((headers, &message[line_end..]));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            match current.as_mut() {
                Some((_, end)) => *end = content_end,
                None => {
                    return Err(DkimError::MalformedMessage(
                        "continuation line before the first header",
                    ));
                }
            }
        } else {
            if let Some((start, end)) = current.take() {
                finish(&mut headers, &message[start..end])?;
            }
            current = Some((pos, content_end));
        }
        pos = line_end;
    }
}

/// Appends the relaxed canonical form of one header field (RFC 6376 §3.4.2), CRLF included.
fn canonical_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    let name = name.trim_end_matches([' ', '\t']);
    out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
    out.push(b':');
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_space = true,
            _ => {
                if pending_space && started {
                    out.push(b' ');
                }
                pending_space = false;
                started = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The relaxed canonical body (RFC 6376 §3.4.4): whitespace runs become one space, trailing
/// whitespace and trailing empty lines go, and every line ends in CRLF.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    let mut empty_lines = 0usize;
    let mut lines = body.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        // The piece after a final LF is not a line.
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut canon = Vec::with_capacity(line.len());
        let mut pending_space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                pending_space = true;
            } else {
                if pending_space {
                    canon.push(b' ');
                }
                pending_space = false;
                canon.push(b);
            }
        }
        if canon.is_empty() {
            empty_lines += 1;
            continue;
        }
        for _ in 0..empty_lines {
            out.extend_from_slice(b"\r\n");
        }
        empty_lines = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_body() {
        assert_eq!(canonical_body(b""), b"");
        assert_eq!(canonical_body(b"\r\n\r\n"), b"");
        assert_eq!(canonical_body(b"a  b \t\r\nc"), b"a b\r\nc\r\n");
        assert_eq!(
            canonical_body(b" x\r\n\r\ny\r\n\r\n\r\n"),
            b" x\r\n\r\ny\r\n"
        );
        assert_eq!(canonical_body(b"x\n \n"), b"x\r\n");
    }

    #[test]
    fn relaxed_header() {
        let mut out = Vec::new();
        canonical_header(&mut out, "SubJect ", b" \t Hello\r\n   world  \t");
        assert_eq!(out, b"subject:Hello world\r\n");
    }

    #[test]
    fn splits_folded_headers() -> Result<(), DkimError> {
        let (h, body) =
            split_message(b"From: a@b.c\r\nSubject: x\r\n y\r\nTo: d@e.f\r\n\r\nbody\r\n")?;
        assert_eq!(h.len(), 3);
        assert_eq!(h[1].value, b" x\r\n y");
        assert_eq!(body, b"body\r\n");
        assert!(split_message(b"From: a@b.c\r\n").is_err());
        assert!(split_message(b" x\r\nFrom: a\r\n\r\n").is_err());
        Ok(())
    }

    #[test]
    fn ed25519_record_and_signature() -> Result<(), DkimError> {
        let key = DkimKey::from_pkcs8_pem(&generate_ed25519()?)?;
        assert_eq!(key.algorithm(), Algorithm::Ed25519Sha256);
        let record = key.dns_record();
        let p = record
            .strip_prefix("v=DKIM1; k=ed25519; p=")
            .unwrap_or_default();
        assert_eq!(B64.decode(p).map(|k| k.len()).ok(), Some(32));
        let signer = Signer::new("example.com", "s1", key)?;
        let header = signer.sign(
            b"From: a@example.com\r\nTo: b@example.org\r\n\r\nhi\r\n",
            1_700_000_000,
        )?;
        assert!(header.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=s1;\r\n\tt=1700000000; h=from:to;\r\n\tbh="));
        assert!(header.ends_with("\r\n"));
        assert!(header.lines().all(|l| l.len() <= 78), "{header}");
        Ok(())
    }

    #[test]
    fn requires_from() -> Result<(), DkimError> {
        let signer = Signer::new(
            "example.com",
            "s1",
            DkimKey::from_pkcs8_pem(&generate_ed25519()?)?,
        )?;
        assert_eq!(
            signer.sign(b"To: b@example.org\r\n\r\nhi\r\n", 0),
            Err(DkimError::MissingFrom)
        );
        Ok(())
    }

    #[test]
    fn validates_domain_and_selector() -> Result<(), DkimError> {
        let pem = generate_ed25519()?;
        for (d, s) in [
            ("example", "s"),
            ("-a.com", "s"),
            ("a..com", "s"),
            ("a.com", "s_1"),
            ("a.com", ""),
            ("a b.com", "s"),
        ] {
            assert!(
                Signer::new(d, s, DkimKey::from_pkcs8_pem(&pem)?).is_err(),
                "{d} {s}"
            );
        }
        assert!(
            Signer::new(
                "mail.example.com.",
                "2024-01.sel",
                DkimKey::from_pkcs8_pem(&pem)?
            )
            .is_ok()
        );
        Ok(())
    }

    #[test]
    fn rejects_bad_pem() {
        assert!(matches!(
            DkimKey::from_pkcs8_pem("nope"),
            Err(DkimError::InvalidPem(_))
        ));
        assert!(matches!(
            DkimKey::from_pkcs8_pem(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            Err(DkimError::InvalidPem(_))
        ));
        assert!(matches!(
            DkimKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(DkimError::InvalidKey(_))
        ));
    }

    #[test]
    fn signer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Signer>();
        check::<DkimKey>();
    }

    #[test]
    fn spki_length_encoding() {
        let spki = rsa_spki(&[0u8; 270]);
        assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
        assert_eq!(&spki[19..23], &[0x03, 0x82, 0x01, 0x0f]);
    }
}
