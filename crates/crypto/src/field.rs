//! Field encryption of lead data: AES-256-GCM under a key ring of data keys, data keys wrapped
//! by a master key, and blind indexes so encrypted email addresses can still be looked up.
//!
//! Why this shape:
//!
//! * **Envelope encryption.** Fields are encrypted with data keys; data keys are stored wrapped
//!   (encrypted) under the master key from the configuration. The master key never touches a
//!   field, so it can be replaced by rewrapping a handful of keys, and a database dump alone
//!   decrypts nothing.
//! * **Key ring.** Every ciphertext names the data key that made it. The active key encrypts,
//!   every key in the ring decrypts, so a rotation can re-encrypt rows online and in batches
//!   while old rows keep reading.
//! * **Place binding.** The associated data binds each ciphertext to its table, column,
//!   organization and row. A ciphertext copied to another row, column or tenant fails to decrypt
//!   instead of showing one customer's contact in another's record.
//! * **Blind indexes.** Equality search on an encrypted email uses an HMAC of the normalised
//!   address under a separate key, mixed with the organization, so the same person in two
//!   organizations does not produce the same index (no cross-tenant correlation) and the index
//!   key cannot decrypt anything.
//!
//! Ciphertext format: `0x02 || key id (u32 big-endian) || nonce(12) || ciphertext+tag(16)`.
//! `0x01` is [`crate::seal`]'s format, so the version byte tells the two apart. The header
//! is fixed-width so SQL can read the key id (`substring(ct FROM 2 FOR 4)`) when looking for rows
//! a rotation has not reached yet.
//!
//! Wrapped-key format: `0x01 || nonce(12) || key(32)+tag(16)`, 61 bytes, with the key id and a
//! purpose label in the associated data, so a wrapped key cannot be stored under another id or
//! loaded for another purpose.
//!
//! Key material (data keys, master key, blind-index key) is zeroized on drop and never appears
//! in `Debug` output or error text.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Version byte of field ciphertexts.
const VERSION: u8 = 2;
/// Version byte of wrapped keys.
const WRAP_VERSION: u8 = 1;
/// Domain labels: the same key used for two jobs can never make one job's output valid for the
/// other.
const FIELD_DOMAIN: &[u8] = b"leadgen.field.v2";
const WRAP_DOMAIN: &[u8] = b"leadgen.keywrap.v1";
const BLIND_DOMAIN: &[u8] = b"leadgen.blind.v1";
/// The blind-index label for email addresses; other indexed kinds would get their own.
const BLIND_EMAIL: &[u8] = b"email";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Version byte and key id.
const HEADER_LEN: usize = 1 + 4;
const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;
/// RFC 5321's limit on a forward path, which is the longest address that can receive mail.
const MAX_EMAIL_LEN: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The ciphertext names a key this ring does not hold (yet: another instance may have
    /// rotated; reload the keys and try again).
    #[error("encrypted under data key {0}, which is not in the key ring")]
    UnknownKey(u32),
    /// Wrong key, wrong place or tampering; AES-GCM does not say which, on purpose.
    #[error("cannot be decrypted (wrong key, wrong place or tampering)")]
    Decrypt,
    /// Not in this module's ciphertext or wrapped-key format at all.
    #[error("not in LeadGen's field-encryption format")]
    Format,
    /// The configured master key text is unusable; the message names the expected format and
    /// never contains the value.
    #[error("invalid master key: {0}")]
    MasterKey(String),
    /// Decrypted fine, but [`KeyRing::decrypt_str`] was asked for text and it is not UTF-8.
    #[error("decrypted value is not valid UTF-8")]
    Utf8,
}

/// Appends `bytes` with a length prefix, so adjacent variable-length parts cannot trade bytes
/// (`"ab" + "c"` must not equal `"a" + "bc"`).
fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    // usize fits in u64 on every platform Rust supports.
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

/// AES-256-GCM with a fresh random nonce: `prefix || nonce || ciphertext+tag`.
///
/// AES-GCM refuses only messages over 64 GiB, which no field or key comes near (Postgres caps a
/// value at 1 GiB). Should it ever refuse, the result is empty, which every reader rejects as
/// [`FieldError::Format`]: the plaintext is never returned in its place.
fn aead_seal(key: &[u8; 32], prefix: &[u8], plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(&(*key).into());
    let nonce: [u8; NONCE_LEN] = random();
    let Ok(ct) = cipher.encrypt(&Nonce::from(nonce), Payload { msg: plain, aad }) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(prefix.len() + NONCE_LEN + ct.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    body: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, FieldError> {
    Aes256Gcm::new(&(*key).into())
        .decrypt(&Nonce::from(*nonce), Payload { msg: body, aad })
        .map_err(|_| FieldError::Decrypt)
}

/// A 32-byte AES-256 data key with its id. Zeroized on drop; `Debug` shows only the id.
#[derive(Clone)]
pub struct DataKey {
    id: u32,
    bytes: [u8; 32],
}

impl DataKey {
    /// A new random key from the thread RNG (a CSPRNG seeded from the OS).
    #[must_use]
    pub fn generate(id: u32) -> Self {
        Self {
            id,
            bytes: random(),
        }
    }

    #[must_use]
    pub fn from_bytes(id: u32, bytes: [u8; 32]) -> Self {
        Self { id, bytes }
    }

    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw key. Only for keys of other kinds stored the same way: the blind-index key is
    /// generated, wrapped and unwrapped as a `DataKey` (with its own id and purpose) and turned
    /// into a [`BlindIndexKey`] with `BlindIndexKey::from_bytes(*key.bytes())`.
    #[must_use]
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Wraps (encrypts) this key under the master key for storage. The associated data binds the
    /// key id and `purpose`, so the stored blob only unwraps as this id for this purpose.
    #[must_use]
    pub fn wrap(&self, master: &MasterKey, purpose: &str) -> Vec<u8> {
        aead_seal(
            &master.0,
            &[WRAP_VERSION],
            &self.bytes,
            &wrap_aad(self.id, purpose),
        )
    }

    /// Unwraps a key wrapped by [`DataKey::wrap`] with the same master key, id and purpose.
    pub fn unwrap(
        master: &MasterKey,
        id: u32,
        purpose: &str,
        wrapped: &[u8],
    ) -> Result<Self, FieldError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(FieldError::Format);
        }
        let Some((&WRAP_VERSION, rest)) = wrapped.split_first() else {
            return Err(FieldError::Format);
        };
        let Some((nonce, body)) = rest.split_first_chunk::<NONCE_LEN>() else {
            return Err(FieldError::Format);
        };
        let plain = Zeroizing::new(aead_open(&master.0, nonce, body, &wrap_aad(id, purpose))?);
        let bytes = <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| FieldError::Format)?;
        Ok(Self { id, bytes })
    }
}

fn wrap_aad(id: u32, purpose: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + 1 + 4 + 8 + purpose.len());
    aad.extend_from_slice(WRAP_DOMAIN);
    aad.push(WRAP_VERSION);
    aad.extend_from_slice(&id.to_be_bytes());
    put(&mut aad, purpose.as_bytes());
    aad
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The key-encryption key from the configuration. It only wraps data keys; zeroized on drop.
pub struct MasterKey([u8; 32]);

/// Standard alphabet, with or without padding: operators paste keys from `openssl rand -base64`
/// and from tools that strip the `=`.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const MASTER_FORMAT: &str =
    "expected 32 bytes written as 64 hex characters or as standard base64 (padded or not)";

impl MasterKey {
    /// Seals a secret that is not a data key (a DKIM signing key) under the master key, bound to
    /// `purpose` (e.g. the domain and selector it signs for), so it opens only there.
    pub fn seal(&self, plain: &[u8], purpose: &str) -> Result<Vec<u8>, crate::seal::SealError> {
        crate::seal::seal(&self.0, plain, purpose.as_bytes())
    }

    /// A secret for another system derived from the master key (HMAC-SHA-256 of the label),
    /// e.g. the passphrase of the backup repository: nothing more to store or lose, and the
    /// label keeps each use's secret apart. 64 hex characters.
    #[must_use]
    pub fn derive_hex(&self, label: &str) -> String {
        use std::fmt::Write;
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(b"leadgen derived secret\0");
        mac.update(label.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .fold(String::with_capacity(64), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }

    /// Opens a secret sealed by [`MasterKey::seal`] for the same purpose.
    pub fn open(&self, sealed: &[u8], purpose: &str) -> Result<Vec<u8>, crate::seal::SealError> {
        crate::seal::open(&self.0, sealed, purpose.as_bytes())
    }

    /// Parses the configured secret: exactly 32 bytes as 64 hex characters or as standard
    /// base64, padded or not. Surrounding whitespace is ignored (secrets read from files end
    /// with a newline). Errors name the expected format and at most the decoded length, never
    /// the value, because they end up in logs.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(FieldError::MasterKey(format!("empty; {MASTER_FORMAT}")));
        }
        if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            // Valid base64 of 32 bytes is 43 or 44 characters and the 44 end in '=', so all-hex
            // text of even length is never one of those.
            return match hex32(text) {
                Some(bytes) => Ok(Self(bytes)),
                None => Err(FieldError::MasterKey(format!(
                    "{MASTER_FORMAT}; this hex value is {} bytes",
                    text.len() / 2
                ))),
            };
        }
        let decoded = Zeroizing::new(
            B64.decode(text)
                .map_err(|_| FieldError::MasterKey(format!("{MASTER_FORMAT}; this is neither")))?,
        );
        let bytes = <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| {
            FieldError::MasterKey(format!(
                "{MASTER_FORMAT}; this base64 value is {} bytes",
                decoded.len()
            ))
        })?;
        Ok(Self(bytes))
    }

    #[must_use]
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
}

/// Decodes exactly 64 hex digits (either case) straight into the key array, so no copy of the
/// key is left behind in a temporary buffer.
fn hex32(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
    }
    Some(out)
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Where a value lives: binds a ciphertext to table, column, organization and row.
/// `org` and `row` are the 16 bytes of their UUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub org: [u8; 16],
    pub row: [u8; 16],
}

/// Associated data of a field ciphertext: the domain, the whole header (so the version and key
/// id cannot be rewritten) and the place.
fn field_aad(id: u32, place: &Place<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(
        FIELD_DOMAIN.len() + HEADER_LEN + 16 + place.table.len() + place.column.len() + 32,
    );
    aad.extend_from_slice(FIELD_DOMAIN);
    aad.extend_from_slice(&header(id));
    put(&mut aad, place.table.as_bytes());
    put(&mut aad, place.column.as_bytes());
    aad.extend_from_slice(&place.org);
    aad.extend_from_slice(&place.row);
    aad
}

fn header(id: u32) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = id.to_be_bytes();
    [VERSION, a, b, c, d]
}

/// A field ciphertext split into its parts; `None` when it is not in the format.
struct Parsed<'a> {
    id: u32,
    nonce: &'a [u8; NONCE_LEN],
    body: &'a [u8],
}

fn parse(ciphertext: &[u8]) -> Option<Parsed<'_>> {
    let (&VERSION, rest) = ciphertext.split_first()? else {
        return None;
    };
    let (id, rest) = rest.split_first_chunk::<4>()?;
    let (nonce, body) = rest.split_first_chunk::<NONCE_LEN>()?;
    (body.len() >= TAG_LEN).then_some(Parsed {
        id: u32::from_be_bytes(*id),
        nonce,
        body,
    })
}

/// Data keys by id: the active key encrypts; every key in the ring decrypts.
#[derive(Clone)]
pub struct KeyRing {
    active: DataKey,
    others: BTreeMap<u32, DataKey>,
}

impl KeyRing {
    /// A ring that encrypts with `active` and decrypts with it and `others`. Should an id occur
    /// twice, `active` wins its id and otherwise the first key given for an id is kept.
    #[must_use]
    pub fn new(active: DataKey, others: Vec<DataKey>) -> Self {
        let mut map = BTreeMap::new();
        for k in others {
            if k.id != active.id {
                map.entry(k.id).or_insert(k);
            }
        }
        Self {
            active,
            others: map,
        }
    }

    #[must_use]
    pub fn active_id(&self) -> u32 {
        self.active.id
    }

    #[must_use]
    pub fn contains(&self, id: u32) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: u32) -> Option<&DataKey> {
        if id == self.active.id {
            Some(&self.active)
        } else {
            self.others.get(&id)
        }
    }

    /// Encrypts `plain` for `place` under the active key with a fresh random nonce, so equal
    /// values give unrelated ciphertexts (search goes through blind indexes instead).
    #[must_use]
    pub fn encrypt(&self, plain: &[u8], place: &Place<'_>) -> Vec<u8> {
        let id = self.active.id;
        aead_seal(
            &self.active.bytes,
            &header(id),
            plain,
            &field_aad(id, place),
        )
    }

    /// Decrypts a value encrypted by [`KeyRing::encrypt`] for the same place with a key this
    /// ring holds.
    pub fn decrypt(&self, ciphertext: &[u8], place: &Place<'_>) -> Result<Vec<u8>, FieldError> {
        let p = parse(ciphertext).ok_or(FieldError::Format)?;
        let key = self.key(p.id).ok_or(FieldError::UnknownKey(p.id))?;
        aead_open(&key.bytes, p.nonce, p.body, &field_aad(p.id, place))
    }

    /// The key id recorded in a ciphertext (`None` if it is not in this format). Unauthenticated:
    /// good for deciding what to re-encrypt or reload, not for trusting the value.
    #[must_use]
    pub fn key_id_of(ciphertext: &[u8]) -> Option<u32> {
        parse(ciphertext).map(|p| p.id)
    }

    #[must_use]
    pub fn encrypt_str(&self, plain: &str, place: &Place<'_>) -> Vec<u8> {
        self.encrypt(plain.as_bytes(), place)
    }

    pub fn decrypt_str(&self, ciphertext: &[u8], place: &Place<'_>) -> Result<String, FieldError> {
        String::from_utf8(self.decrypt(ciphertext, place)?).map_err(|_| FieldError::Utf8)
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.id)
            .field("others", &self.others.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Key of blind indexes: HMAC-SHA256 over a purpose label, the organization and the normalised
/// value. A key of its own, so holding the index key decrypts nothing and vice versa.
///
/// It has no wrap format of its own: it is stored like a data key (generated, wrapped and
/// unwrapped as a [`DataKey`] with its own id and purpose, e.g. `"blind"`) and converted with
/// `BlindIndexKey::from_bytes(*data_key.bytes())`, or from [`BlindIndexKey::to_bytes`] back
/// into `DataKey::from_bytes`. Zeroized on drop.
#[derive(Clone)]
pub struct BlindIndexKey([u8; 32]);

impl BlindIndexKey {
    #[must_use]
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// A new random key from the thread RNG (a CSPRNG seeded from the OS).
    #[must_use]
    pub fn generate() -> Self {
        Self(random())
    }

    /// The raw key, for wrapping it as a [`DataKey`].
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The blind index of an email address in an organization; `None` when the input is not an
    /// email address after [`normalize_email`]. Case and surrounding-space variants of one
    /// address give the same index; the same address in another organization gives another.
    #[must_use]
    pub fn email(&self, org: [u8; 16], email: &str) -> Option<[u8; 32]> {
        let normal = Zeroizing::new(normalize_email(email)?);
        self.index(BLIND_EMAIL, org, normal.as_bytes())
    }

    fn index(&self, purpose: &[u8], org: [u8; 16], value: &[u8]) -> Option<[u8; 32]> {
        // HMAC takes keys of any length, so this never fails.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(BLIND_DOMAIN);
        let mut input = Vec::with_capacity(8 + purpose.len() + 16 + 8 + value.len());
        put(&mut input, purpose);
        input.extend_from_slice(&org);
        put(&mut input, value);
        mac.update(&input);
        input.zeroize();
        Some(mac.finalize().into_bytes().into())
    }
}

impl Drop for BlindIndexKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(..)")
    }
}

/// The canonical form of an email address, for storage and blind indexes: surrounding
/// whitespace trimmed and the whole address lowercased (ASCII and Unicode). Lowercasing the
/// local part is technically lossy, but no real mail system distinguishes case there and the
/// index must not split one person into two.
///
/// Returns `None` unless the result has exactly one `@` with a non-empty local part, a domain
/// containing a dot with no empty label (`a@.b`, `a@b.` and `a@b..c` are refused), no
/// whitespace or control characters inside, and at most 254 bytes. This is a sanity check, not
/// RFC 5322 validation: whether an address receives mail is only known by sending to it.
#[must_use]
pub fn normalize_email(s: &str) -> Option<String> {
    let trimmed = s.trim();
    // Lowercasing shrinks a character by at most a factor of three (U+212A KELVIN SIGN to 'k'),
    // so longer input cannot fit; refusing it early bounds the work on hostile input.
    if trimmed.is_empty() || trimmed.len() > 3 * MAX_EMAIL_LEN {
        return None;
    }
    let lower = trimmed.to_lowercase();
    if lower.len() > MAX_EMAIL_LEN || lower.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = lower.split_once('@')?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.split('.').any(str::is_empty)
    {
        return None;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: [u8; 16] = [1; 16];
    const ROW: [u8; 16] = [2; 16];

    fn place() -> Place<'static> {
        Place {
            table: "leads",
            column: "email",
            org: ORG,
            row: ROW,
        }
    }

    fn ring(id: u32) -> KeyRing {
        KeyRing::new(DataKey::from_bytes(id, [id as u8; 32]), Vec::new())
    }

    #[test]
    fn field_round_trip_and_format() {
        let r = ring(7);
        let ct = r.encrypt(b"ann@example.com", &place());
        assert_eq!(ct[0], 0x02);
        assert_eq!(&ct[1..5], &7u32.to_be_bytes());
        assert_eq!(ct.len(), 1 + 4 + 12 + 15 + 16);
        assert_eq!(KeyRing::key_id_of(&ct), Some(7));
        assert_eq!(r.decrypt(&ct, &place()).unwrap(), b"ann@example.com");
        assert_ne!(
            ct,
            r.encrypt(b"ann@example.com", &place()),
            "fresh nonce each time"
        );

        let empty = r.encrypt(b"", &place());
        assert_eq!(r.decrypt(&empty, &place()).unwrap(), b"");

        let s = r.encrypt_str("Zoë Ünal", &place());
        assert_eq!(r.decrypt_str(&s, &place()).unwrap(), "Zoë Ünal");
        let bad = r.encrypt(&[0xff, 0xfe], &place());
        assert_eq!(r.decrypt_str(&bad, &place()), Err(FieldError::Utf8));
        assert_eq!(r.decrypt(&bad, &place()).unwrap(), [0xff, 0xfe]);
    }

    #[test]
    fn ciphertext_moved_to_another_place_fails() {
        let r = ring(1);
        let ct = r.encrypt(b"+1 555 0100", &place());
        let moved = [
            Place {
                row: [3; 16],
                ..place()
            },
            Place {
                column: "phone",
                ..place()
            },
            Place {
                table: "contacts",
                ..place()
            },
            Place {
                org: [9; 16],
                ..place()
            },
        ];
        for p in moved {
            assert_eq!(r.decrypt(&ct, &p), Err(FieldError::Decrypt), "{p:?}");
        }
        // Length prefixes: the table/column boundary cannot shift.
        let a = Place {
            table: "ab",
            column: "c",
            ..place()
        };
        let b = Place {
            table: "a",
            column: "bc",
            ..place()
        };
        let ct = r.encrypt(b"x", &a);
        assert_eq!(r.decrypt(&ct, &b), Err(FieldError::Decrypt));
        assert_eq!(r.decrypt(&ct, &a).unwrap(), b"x");
    }

    #[test]
    fn any_flipped_bit_fails() {
        let r = ring(1);
        let ct = r.encrypt(b"secret", &place());
        for i in 0..ct.len() {
            for bit in 0..8 {
                let mut t = ct.clone();
                t[i] ^= 1 << bit;
                let got = r.decrypt(&t, &place());
                match i {
                    0 => assert_eq!(got, Err(FieldError::Format)),
                    1..=4 => assert!(
                        matches!(got, Err(FieldError::UnknownKey(_))),
                        "byte {i} bit {bit}: {got:?}"
                    ),
                    _ => assert_eq!(got, Err(FieldError::Decrypt), "byte {i} bit {bit}"),
                }
            }
        }
    }

    #[test]
    fn rewritten_key_id_fails() {
        // Two ids with the same key bytes: only the associated data tells them apart.
        let same = [5u8; 32];
        let r = KeyRing::new(
            DataKey::from_bytes(1, same),
            vec![DataKey::from_bytes(2, same)],
        );
        let mut ct = r.encrypt(b"x", &place());
        ct[1..5].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(KeyRing::key_id_of(&ct), Some(2));
        assert_eq!(r.decrypt(&ct, &place()), Err(FieldError::Decrypt));
    }

    #[test]
    fn unknown_key_and_malformed_input() {
        let ct = ring(1).encrypt(b"x", &place());
        assert_eq!(
            ring(2).decrypt(&ct, &place()),
            Err(FieldError::UnknownKey(1))
        );
        let r = ring(1);
        for bad in [&[][..], &[2][..], &ct[..32], &[1; 40][..]] {
            assert_eq!(r.decrypt(bad, &place()), Err(FieldError::Format), "{bad:?}");
        }
        assert_eq!(KeyRing::key_id_of(&[1; 40]), None);
        assert_eq!(KeyRing::key_id_of(&ct[..32]), None);
        assert_eq!(KeyRing::key_id_of(&ct[..33]), Some(1));
        // A sealed (format 1) value is not a field ciphertext.
        let sealed = crate::seal::seal(&[1; 32], b"x", b"a").unwrap();
        assert_eq!(r.decrypt(&sealed, &place()), Err(FieldError::Format));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let old = DataKey::generate(1);
        let new = DataKey::generate(2);
        let before = KeyRing::new(old.clone(), Vec::new());
        let ct_old = before.encrypt(b"old value", &place());

        let after = KeyRing::new(new.clone(), vec![old]);
        assert_eq!(after.active_id(), 2);
        assert!(after.contains(1) && after.contains(2) && !after.contains(3));
        assert_eq!(after.decrypt(&ct_old, &place()).unwrap(), b"old value");
        let ct_new = after.encrypt(b"new value", &place());
        assert_eq!(KeyRing::key_id_of(&ct_new), Some(2));
        assert_eq!(
            before.decrypt(&ct_new, &place()),
            Err(FieldError::UnknownKey(2))
        );

        let retired = KeyRing::new(new, Vec::new());
        assert_eq!(retired.decrypt(&ct_new, &place()).unwrap(), b"new value");
        assert_eq!(
            retired.decrypt(&ct_old, &place()),
            Err(FieldError::UnknownKey(1))
        );
    }

    #[test]
    fn ring_with_duplicate_ids_keeps_active() {
        let r = KeyRing::new(
            DataKey::from_bytes(1, [1; 32]),
            vec![
                DataKey::from_bytes(1, [9; 32]),
                DataKey::from_bytes(2, [2; 32]),
                DataKey::from_bytes(2, [8; 32]),
            ],
        );
        let ct = r.encrypt(b"x", &place());
        assert_eq!(ring(1).decrypt(&ct, &place()).unwrap(), b"x");
        let ct2 = ring(2).encrypt(b"y", &place());
        assert_eq!(r.decrypt(&ct2, &place()).unwrap(), b"y");
        assert_eq!(format!("{r:?}"), "KeyRing { active: 1, others: [2] }");
    }

    #[test]
    fn wrap_and_unwrap() {
        let master = MasterKey::from_bytes([3; 32]);
        let key = DataKey::generate(4);
        let wrapped = key.wrap(&master, "field");
        assert_eq!(wrapped.len(), 61);
        let back = DataKey::unwrap(&master, 4, "field", &wrapped).unwrap();
        assert_eq!(back.id(), 4);
        assert_eq!(back.bytes(), key.bytes());
        assert_ne!(wrapped, key.wrap(&master, "field"), "fresh nonce");

        let other = MasterKey::from_bytes([4; 32]);
        assert_eq!(
            DataKey::unwrap(&other, 4, "field", &wrapped).map(|k| k.id()),
            Err(FieldError::Decrypt)
        );
        assert_eq!(
            DataKey::unwrap(&master, 5, "field", &wrapped).map(|k| k.id()),
            Err(FieldError::Decrypt)
        );
        assert_eq!(
            DataKey::unwrap(&master, 4, "blind", &wrapped).map(|k| k.id()),
            Err(FieldError::Decrypt)
        );
        let mut t = wrapped.clone();
        t[30] ^= 1;
        assert_eq!(
            DataKey::unwrap(&master, 4, "field", &t).map(|k| k.id()),
            Err(FieldError::Decrypt)
        );
        assert_eq!(
            DataKey::unwrap(&master, 4, "field", &wrapped[..60]).map(|k| k.id()),
            Err(FieldError::Format)
        );

        // The blind-index key travels as a data key.
        let blind = BlindIndexKey::generate();
        let w = DataKey::from_bytes(1_000_000, blind.to_bytes()).wrap(&master, "blind");
        let k = DataKey::unwrap(&master, 1_000_000, "blind", &w).unwrap();
        let back = BlindIndexKey::from_bytes(*k.bytes());
        assert_eq!(back.email(ORG, "a@b.c"), blind.email(ORG, "a@b.c"));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let key = DataKey::from_bytes(9, [0xab; 32]);
        assert_eq!(format!("{key:?}"), "DataKey { id: 9, .. }");
        assert!(!format!("{:?}", MasterKey::from_bytes([0xab; 32])).contains("171"));
        assert!(!format!("{:?}", BlindIndexKey::from_bytes([0xab; 32])).contains("171"));
    }

    #[test]
    fn master_key_parsing() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let b64_nopad = b64.trim_end_matches('=').to_owned();
        for text in [
            hex.clone(),
            hex.to_uppercase(),
            format!("  {hex}\n"),
            b64.clone(),
            b64_nopad,
        ] {
            let k = MasterKey::parse(&text).unwrap();
            assert_eq!(k.0, bytes, "{text}");
        }

        let hex31: String = hex[..62].to_owned();
        let hex33 = format!("{hex}ab");
        let b64_31 = base64::engine::general_purpose::STANDARD.encode(&bytes[..31]);
        let b64_33 =
            base64::engine::general_purpose::STANDARD.encode([bytes.as_slice(), &[1]].concat());
        let garbage = "correct horse battery staple!!".to_owned();
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode([0xfb; 32]);
        for text in [
            hex31,
            hex33,
            b64_31,
            b64_33,
            garbage,
            url_safe,
            String::new(),
        ] {
            let Err(FieldError::MasterKey(msg)) = MasterKey::parse(&text) else {
                panic!("accepted {text:?}");
            };
            assert!(msg.contains("32 bytes"), "{msg}");
            assert!(msg.contains("hex") && msg.contains("base64"), "{msg}");
            if !text.is_empty() {
                assert!(!msg.contains(&text), "echoes the value: {msg}");
                assert!(!msg.contains(&text[..8]), "echoes part of the value: {msg}");
            }
        }
        let Err(e) = MasterKey::parse(&hex[..62]) else {
            panic!()
        };
        assert!(e.to_string().contains("31 bytes"), "{e}");
    }

    #[test]
    fn email_normalisation() {
        assert_eq!(
            normalize_email("  Ann.Lee@Example.COM ").as_deref(),
            Some("ann.lee@example.com")
        );
        assert_eq!(
            normalize_email("ÉLODIE@Exemple.FR").as_deref(),
            Some("élodie@exemple.fr")
        );
        assert_eq!(
            normalize_email("a+tag@sub.example.co.uk").as_deref(),
            Some("a+tag@sub.example.co.uk")
        );
        for bad in [
            "no-at",
            "a@b",
            "a@@b.c",
            "a@b@c.d",
            "a b@c.d",
            "a@b .c",
            "a\t@b.c",
            "a\u{0}@b.c",
            "",
            "   ",
            "@b.c",
            "a@.b",
            "a@b.",
            "a@b..c",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
        let local = "a".repeat(64);
        let ok = format!("{local}@{}.com", "d".repeat(254 - 64 - 1 - 4));
        assert_eq!(ok.len(), 254);
        assert!(normalize_email(&ok).is_some());
        let long = format!("{local}@{}.com", "d".repeat(254 - 64 - 1 - 4 + 1));
        assert_eq!(normalize_email(&long), None);
        assert_eq!(normalize_email(&"x".repeat(100_000)), None);
    }

    #[test]
    fn blind_index() {
        let k = BlindIndexKey::from_bytes([6; 32]);
        let a = k.email(ORG, "Ann.Lee@Example.com").unwrap();
        assert_eq!(k.email(ORG, "  ann.lee@EXAMPLE.COM\n"), Some(a));
        assert_ne!(k.email(ORG, "ann.lee@example.org"), Some(a));
        assert_ne!(
            k.email([7; 16], "ann.lee@example.com"),
            Some(a),
            "other org"
        );
        assert_ne!(
            BlindIndexKey::from_bytes([5; 32]).email(ORG, "ann.lee@example.com"),
            Some(a),
            "other key"
        );
        assert_ne!(
            BlindIndexKey::generate().email(ORG, "ann.lee@example.com"),
            Some(a)
        );
        assert_eq!(k.email(ORG, "not an address"), None);
    }
}
