//! Masking of personal data and secrets in free text, applied to every log line.
//!
//! # Why this exists
//!
//! Logs are a leak path: they are shipped to aggregators, kept for months, copied into
//! tickets and read by people and tools that never need a prospect's e-mail address, a
//! user's password or an API key. The *first* line of defence is not logging such values
//! at all (typed log fields, secret types whose `Debug` prints nothing). This module is
//! the *second* line: the log writer passes every rendered line through [`redact`], so a
//! value that slipped through anyway is masked before it leaves the process. It is a
//! safety net, not a licence to log sensitive data.
//!
//! # Constraints
//!
//! * Log lines are JSON. Every replacement is made only of letters, digits, `[`, `]`,
//!   `_` and `*` (never `"` or `\`), and no edit starts inside a JSON escape sequence
//!   such as `\n`, so a valid JSON line stays valid. Key/value rules understand JSON
//!   that was itself escaped into a JSON string (`\"password\":\"hunter2\"`), at any
//!   depth.
//! * Precision matters as much as recall: timestamps, UUIDs, request ids, IP addresses,
//!   latencies, versions and counts must survive, or the logs become useless and people
//!   are tempted to switch redaction off.
//! * The common case (nothing sensitive) borrows the input and allocates nothing.
//! * No panics: the patterns compile once; should that ever fail, every line becomes
//!   `[redaction-unavailable]` (fail closed) rather than passing through unredacted.
//!
//! # What is masked, in the order the rules run
//!
//! 1. JSON string values of secret keys (`password`, `new_password`, `secret`,
//!    `client_secret`, `token`, `refresh_token`, `access_token`, `api_key`,
//!    `authorization`, `cookie`, `credentials`, `private_key`, ...; any key *ending* in
//!    one of those words, `camelCase` too, case-insensitive) → `[redacted]`.
//! 2. JSON string values of phone keys (`phone`, `mobile`, `phone_number`, ...) holding
//!    at least 7 digits → `[phone]`.
//! 3. Passwords in URLs (`scheme://user:secret@host`) → `[redacted]`.
//! 4. `Authorization: <scheme> <credentials>` headers → scheme kept, credentials
//!    `[redacted]` (without a scheme only a credential-looking value is masked).
//! 5. `Bearer <token>` (case-insensitive) → `Bearer [redacted]`.
//! 6. Urlencoded / logfmt pairs with a secret key (`password=...`, `token=...`) → value
//!    `[redacted]`.
//! 7. JWTs (`eyJ...`, three to five base64url segments) → `[jwt]`.
//! 8. `LeadGen` API keys `lg_live_...` / `lg_test_...` → prefix kept, rest `[redacted]`.
//! 9. E-mail addresses (also urlencoded as `%40`) → `[email]`.
//! 10. Card numbers: 13–19 digits, optionally grouped by single spaces or dashes,
//!     passing the Luhn check → first 6 and last 4 digits kept, the rest `*`.
//! 11. Phone numbers: international (`+` or `%2B`, 9–15 digits) and common national
//!     shapes (`(415) 555-0100`, `415.555.0100`, `415-555-0100`, `020 7946 0958`)
//!     → `[phone]`.
//!
//! # Known limitations
//!
//! * Phone numbers written as a bare run of digits (`4155550100`) are not recognised:
//!   they cannot be told apart from ids and counts.
//! * Card candidates whose first digit is `0` or `1` are ignored (no major scheme uses
//!   them, while epoch timestamps in milliseconds or nanoseconds do). A card number that
//!   is a bare JSON number (`"pan":4111111111111111`) is masked with `0` instead of `*`
//!   to keep the line valid JSON. Any other 13–19 digit number starting with 2–9 that
//!   happens to pass Luhn (one in ten does) is masked too.
//! * A card number glued to letters (`ref4111111111111111`) or joined by a dash to other
//!   digits (`12-4111111111111111`) is not recognised; neither is a card or a phone
//!   number written with `\uXXXX` escapes for its digits.
//! * Secret values that are not JSON strings (`"password":12345`, objects, arrays) are
//!   left alone, as are secrets under keys that do not name them (`"note":"pw hunter2"`).
//! * An international number directly followed by another number, separated by one
//!   space, is taken as part of the phone number as long as the total stays within 15
//!   digits (over-masking, never under-masking).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Match, Regex};

const REDACTED: &str = "[redacted]";
const EMAIL: &str = "[email]";
const PHONE: &str = "[phone]";
const JWT: &str = "[jwt]";
/// Returned instead of the input if the patterns failed to compile: fail closed.
const UNAVAILABLE: &str = "[redaction-unavailable]";

/// Key names whose value is a secret; matched on the end of the key, case-insensitively.
const SECRET_KEY: &str = concat!(
    r"[a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|credentials?|authorization|cookie",
    r"|(?:api|private|secret|signing|access)[_-]?key)"
);
/// Key names whose value is a phone number.
const PHONE_KEY: &str = r"[a-z0-9_.-]*(?:phone|mobile|msisdn|telephone|fax)(?:[_-]?(?:number|no))?";
/// Separators allowed between a JSON key and its value, at any escaping depth.
const JSON_COLON: &str = r"(?:\s|\\[nrt])*:(?:\s|\\[nrt])*";

/// Returns the input with every sensitive value masked; borrows when nothing matched.
#[must_use]
pub fn redact(input: &str) -> Cow<'_, str> {
    let Some(patterns) = PATTERNS.as_ref() else {
        return Cow::Borrowed(UNAVAILABLE);
    };
    let mut text = Cow::Borrowed(input);
    for rule in RULES {
        if let Some(changed) = rule(patterns, &text) {
            text = Cow::Owned(changed);
        }
    }
    text
}

type Rule = fn(&Patterns, &str) -> Option<String>;

/// The rules in the order they run: key/value rules first, so a whole secret value is
/// replaced before the shape rules below could mask only parts of it.
const RULES: [Rule; 12] = [
    |p, t| {
        rewrite(t, &p.json_secret, |t, c| {
            json_value(t, c, REDACTED, |_| true)
        })
    },
    |p, t| {
        rewrite(t, &p.json_phone, |t, c| {
            json_value(t, c, PHONE, |v| digit_count(v) >= 7)
        })
    },
    |p, t| rewrite(t, &p.url_credentials, |_, c| replace_group(c, 1, REDACTED)),
    |p, t| rewrite(t, &p.auth_header, authorization_header),
    |p, t| rewrite(t, &p.bearer, bearer_token),
    |p, t| rewrite(t, &p.form_secret, |_, c| replace_group(c, 1, REDACTED)),
    |p, t| rewrite_matches(t, &p.jwt, |t, m| whole_match_at_boundary(t, m, JWT)),
    |p, t| rewrite(t, &p.api_key, api_key),
    |p, t| rewrite(t, &p.email, email),
    |p, t| rewrite_matches(t, &p.card_candidate, card_number),
    |p, t| rewrite_matches(t, &p.phone_international, international_phone),
    |p, t| rewrite_matches(t, &p.phone_national, national_phone),
];

struct Patterns {
    json_secret: Regex,
    json_phone: Regex,
    url_credentials: Regex,
    auth_header: Regex,
    bearer: Regex,
    form_secret: Regex,
    jwt: Regex,
    api_key: Regex,
    email: Regex,
    card_candidate: Regex,
    phone_international: Regex,
    phone_national: Regex,
}

/// Compiled once. `None` only if a pattern failed to compile, which the tests rule out
/// (all patterns are literals); [`redact`] then fails closed instead of panicking.
static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| Patterns::compile().ok());

impl Patterns {
    fn compile() -> Result<Self, regex::Error> {
        Ok(Self {
            // `"key":"` with the quotes of key and value escaped to any depth; group 1 is
            // the backslashes before the value's opening quote.
            json_secret: Regex::new(&format!(r#"(?i)\\*"{SECRET_KEY}\\*"{JSON_COLON}(\\*)""#))?,
            json_phone: Regex::new(&format!(r#"(?i)\\*"{PHONE_KEY}\\*"{JSON_COLON}(\\*)""#))?,
            url_credentials: Regex::new(
                r#"(?i)[a-z][a-z0-9+.-]*://[^\s/?#@:"\\]+:([^\s/?#@"\\]+)@"#,
            )?,
            auth_header: Regex::new(
                r"(?i)(?:proxy-)?authorization[ \t]*:[ \t]*(?:(basic|bearer|token|negotiate|ntlm|apikey)[ \t]+)?([a-z0-9+/=._~-]+)",
            )?,
            bearer: Regex::new(r"(?i)bearer[ \t]+([a-z0-9._~+/-]+=*)")?,
            form_secret: Regex::new(&format!(r#"(?i){SECRET_KEY}[ \t]*=[ \t]*([^&\s"\\#;]+)"#))?,
            jwt: Regex::new(
                r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+){0,2}",
            )?,
            api_key: Regex::new(r"lg_(?:live|test)_([A-Za-z0-9_]+)")?,
            // The local part may hold `\uXXXX` escapes (non-ASCII names in ASCII-only JSON).
            email: Regex::new(
                r"((?:[\w.%+'-]|\\u[0-9A-Fa-f]{4})+)(?:@|%40)[\w-]+(?:\.[\w-]+)*\.\p{L}{2,}",
            )?,
            // A maximal run of digits joined by single spaces or dashes holding at least
            // 13 digits (shorter runs cannot hold a card).
            card_candidate: Regex::new(r"[0-9](?:[ -]?[0-9]){12,}")?,
            phone_international: Regex::new(r"(?:\+|%2[Bb])[0-9]")?,
            phone_national: Regex::new(
                r"(?x)
                  (?:1[\ .-]?)?\([0-9]{2,4}\)[\ .-]?[0-9]{3,4}[\ .-]?[0-9]{3,4}  # (415) 555-0100
                | (?:1-)?[0-9]{3}-[0-9]{3}-[0-9]{4}                              # 415-555-0100
                | (?:1\.)?[0-9]{3}\.[0-9]{3}\.[0-9]{4}                           # 415.555.0100
                | (?:1\ )?[0-9]{3}\ [0-9]{3}\ [0-9]{4}                           # 415 555 0100
                | 0[1-9][0-9]{1,3}[\ -][0-9]{3,4}[\ -]?[0-9]{3,4}                # 020 7946 0958
                ",
            )?,
        })
    }
}

/// One replacement of `text[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    with: Cow<'static, str>,
}

impl Edit {
    fn new(start: usize, end: usize, with: impl Into<Cow<'static, str>>) -> Self {
        Self {
            start,
            end,
            with: with.into(),
        }
    }
}

/// Applies `decide` to successive matches of `re` (with capture groups) and performs
/// the edits it returns. Returns `None` when nothing was edited.
fn rewrite(
    text: &str,
    re: &Regex,
    decide: impl FnMut(&str, &Captures<'_>) -> Option<Edit>,
) -> Option<String> {
    edit_all(
        text,
        |pos| {
            let caps = re.captures_at(text, pos)?;
            let whole = caps.get(0)?;
            Some((whole.range(), caps))
        },
        decide,
    )
}

/// Like [`rewrite`] for rules that need only the match (much cheaper than captures).
fn rewrite_matches(
    text: &str,
    re: &Regex,
    mut decide: impl FnMut(&str, Match<'_>) -> Option<Edit>,
) -> Option<String> {
    edit_all(
        text,
        |pos| re.find_at(text, pos).map(|m| (m.range(), m)),
        |text, m| decide(text, *m),
    )
}

/// Finds successive matches with `find(from)` and performs the edits `decide` returns.
///
/// An edit may end before the match (the rest of the match is searched again) or after
/// it (the search resumes after the edit).
fn edit_all<T>(
    text: &str,
    mut find: impl FnMut(usize) -> Option<(Range<usize>, T)>,
    mut decide: impl FnMut(&str, &T) -> Option<Edit>,
) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut pos = 0;
    while pos <= text.len() {
        let Some((whole, found)) = find(pos) else {
            break;
        };
        let mut next = whole.end;
        if let Some(edit) = decide(text, &found)
            && edit.end >= edit.start
            && text.is_char_boundary(edit.end)
            && let Some(kept) = text.get(copied..edit.start)
        {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(kept);
            buf.push_str(&edit.with);
            copied = edit.end;
            if edit.end > whole.start {
                next = edit.end;
            }
        }
        if next <= pos {
            // Guarantee progress on an empty match (none of the patterns has one).
            next = pos
                + text
                    .get(pos..)
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
        }
        pos = next;
    }
    out.map(|mut buf| {
        buf.push_str(text.get(copied..).unwrap_or_default());
        buf
    })
}

fn replace_group(caps: &Captures<'_>, group: usize, with: &'static str) -> Option<Edit> {
    let value = caps.get(group)?;
    (value.as_str() != with).then(|| Edit::new(value.start(), value.end(), with))
}

fn whole_match_at_boundary(text: &str, whole: Match<'_>, with: &'static str) -> Option<Edit> {
    boundary_before(text, whole.start()).then(|| Edit::new(whole.start(), whole.end(), with))
}

/// Replaces the JSON string value that starts right after the match with `with`.
///
/// Group 1 holds the backslashes before the value's opening quote: `2^n - 1` of them at
/// escaping depth `n`. At that depth the closing quote is the first `"` preceded by a
/// number of backslashes `c` with `c mod 2^(n+1) == 2^n - 1`; fewer or more are escaped
/// quotes or escaped backslashes inside the value. A value that never closes (a
/// truncated line) is redacted to the end of the text.
fn json_value(
    text: &str,
    caps: &Captures<'_>,
    with: &'static str,
    applies: impl Fn(&str) -> bool,
) -> Option<Edit> {
    let depth_escapes = caps.get(1).map_or(0, |m| m.len());
    if !(depth_escapes + 1).is_power_of_two() {
        return None;
    }
    let modulus = (depth_escapes + 1) * 2;
    let start = caps.get(0)?.end();
    let bytes = text.as_bytes();
    let mut end = text.len();
    let mut search = start;
    while let Some(offset) = bytes
        .get(search..)
        .and_then(|rest| rest.iter().position(|&b| b == b'"'))
    {
        let quote = search + offset;
        let escapes = trailing_backslashes(bytes.get(start..quote)?);
        if escapes % modulus == depth_escapes {
            end = quote - depth_escapes;
            break;
        }
        search = quote + 1;
    }
    let value = text.get(start..end)?;
    (!value.is_empty() && value != with && applies(value)).then(|| Edit::new(start, end, with))
}

fn authorization_header(text: &str, caps: &Captures<'_>) -> Option<Edit> {
    let whole = caps.get(0)?;
    let credentials = caps.get(2)?;
    let has_scheme = caps.get(1).is_some();
    // Without a scheme, only a credential-looking value: `authorization: denied` is prose.
    (boundary_before(text, whole.start()) && (has_scheme || token_like(credentials.as_str())))
        .then(|| Edit::new(credentials.start(), credentials.end(), REDACTED))
}

fn bearer_token(text: &str, caps: &Captures<'_>) -> Option<Edit> {
    let whole = caps.get(0)?;
    let token = caps.get(1)?;
    // A token does not end in a full stop; one there ends the sentence.
    let trimmed = token.as_str().trim_end_matches('.');
    // `Bearer realm=x` is a challenge with parameters, `bearer HTTP/1.1` the end of a
    // request line (`?token_type=bearer HTTP/1.1`): neither holds a credential.
    let parameter = token.as_str().ends_with('=') && !boundary_after(text, token.end());
    let protocol = trimmed
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("http/"));
    (boundary_before(text, whole.start()) && token_like(trimmed) && !parameter && !protocol)
        .then(|| Edit::new(token.start(), token.start() + trimmed.len(), REDACTED))
}

fn api_key(text: &str, caps: &Captures<'_>) -> Option<Edit> {
    let whole = caps.get(0)?;
    if !boundary_before(text, whole.start()) {
        return None;
    }
    replace_group(caps, 1, REDACTED)
}

fn email(text: &str, caps: &Captures<'_>) -> Option<Edit> {
    let whole = caps.get(0)?;
    let local_end = caps.get(1)?.end();
    let bytes = text.as_bytes();
    let mut start = whole.start();
    // Never start inside an escape (`\n` before the address, or the second backslash of
    // `\\`), nor on punctuation that only surrounds the address.
    while start < local_end {
        let after_escape = skip_escape(text, start);
        if after_escape > start {
            start = after_escape;
        } else if matches!(bytes.get(start), Some(b'.' | b'\'' | b'+' | b'-')) {
            start += 1;
        } else {
            break;
        }
    }
    (start < local_end).then(|| Edit::new(start, whole.end(), EMAIL))
}

/// Finds the first card number in a run of digits grouped by single spaces or dashes.
///
/// A card may span several space-separated groups of the run but never starts or ends
/// at a dash, so dates, UUIDs and other dash-joined numbers are never cut into a card.
fn card_number(text: &str, run: Match<'_>) -> Option<Edit> {
    let bytes = text.as_bytes();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_start = None;
    for (offset, byte) in run.as_str().bytes().enumerate() {
        if byte.is_ascii_digit() {
            group_start.get_or_insert(run.start() + offset);
        } else if let Some(start) = group_start.take() {
            groups.push((start, run.start() + offset));
        }
    }
    if let Some(start) = group_start {
        groups.push((start, run.end()));
    }
    let last = groups.len().checked_sub(1)?;
    let starts_ok = |g: usize| {
        if g == 0 {
            card_boundary_before(text, run.start())
        } else {
            groups
                .get(g)
                .is_some_and(|&(s, _)| bytes.get(s.wrapping_sub(1)) == Some(&b' '))
        }
    };
    let ends_ok = |g: usize| {
        if g == last {
            card_boundary_after(text, run.end())
        } else {
            groups
                .get(g)
                .is_some_and(|&(_, e)| bytes.get(e) == Some(&b' '))
        }
    };
    for first in 0..=last {
        if !starts_ok(first) {
            continue;
        }
        let mut digits: Vec<u8> = Vec::with_capacity(19);
        let mut best = None;
        for (g, &(s, e)) in groups.iter().enumerate().skip(first) {
            digits.extend(bytes.get(s..e)?.iter().map(|b| b - b'0'));
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && ends_ok(g) && plausible_card(&digits) {
                best = Some((g, digits.clone()));
            }
        }
        if let Some((end_group, digits)) = best {
            let start = groups.get(first)?.0;
            let end = groups.get(end_group)?.1;
            let bare_json_number = first == 0
                && end_group == last
                && last == 0
                && in_json_number_position(text, start, end);
            return Some(Edit::new(
                start,
                end,
                mask_card(&digits, if bare_json_number { '0' } else { '*' }),
            ));
        }
    }
    None
}

/// Luhn-valid and starting with 2–9 (0 and 1 start no major card scheme but do start
/// epoch timestamps and zero-padded ids).
fn plausible_card(digits: &[u8]) -> bool {
    digits.first().is_some_and(|&d| d >= 2) && luhn_valid(digits)
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// First six and last four digits kept, every other digit replaced by `fill`.
fn mask_card(digits: &[u8], fill: char) -> String {
    let keep_tail = digits.len().saturating_sub(4);
    digits
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i < 6 || i >= keep_tail {
                char::from(b'0' + d)
            } else {
                fill
            }
        })
        .collect()
}

/// Whether `text[start..end]` sits where a JSON number would (`:` or `[` or `,` before,
/// `,` or `}` or `]` or the end after), so that masking must keep it a number.
fn in_json_number_position(text: &str, start: usize, end: usize) -> bool {
    let before = text
        .get(..start)
        .and_then(|s| s.trim_end().chars().next_back());
    let after = text.get(end..).and_then(|s| s.trim_start().chars().next());
    matches!(before, Some(':' | '[' | ',')) && matches!(after, None | Some(',' | '}' | ']'))
}

fn card_boundary_before(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    let prev = at.checked_sub(1).and_then(|i| bytes.get(i));
    let prev2 = at.checked_sub(2).and_then(|i| bytes.get(i));
    let url_plus = at
        .checked_sub(3)
        .and_then(|i| text.get(i..at))
        .is_some_and(|s| s.eq_ignore_ascii_case("%2b"));
    boundary_before(text, at)
        && prev != Some(&b'+')
        && !(prev == Some(&b'.') && prev2.is_some_and(u8::is_ascii_digit))
        && !url_plus
}

fn card_boundary_after(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    boundary_after(text, at)
        && !(bytes.get(at) == Some(&b'.') && bytes.get(at + 1).is_some_and(u8::is_ascii_digit))
}

fn international_phone(text: &str, whole: Match<'_>) -> Option<Edit> {
    if !boundary_before(text, whole.start()) {
        return None;
    }
    let end = international_phone_end(text.as_bytes(), whole.end() - 1)?;
    Some(Edit::new(whole.start(), end, PHONE))
}

/// Parses digit groups after the `+`: single separators (space, dot, dash), optional
/// parenthesised groups (`(0)`, `(415)`), at most 15 digits in all (E.164), at least 9.
fn international_phone_end(bytes: &[u8], first_digit: usize) -> Option<usize> {
    let digits_from = |at: usize| {
        bytes.get(at..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    };
    let mut digits = digits_from(first_digit);
    if digits > 15 {
        return None;
    }
    let mut end = first_digit + digits;
    loop {
        let mut at = end;
        if matches!(bytes.get(at), Some(b' ' | b'.' | b'-')) {
            at += 1;
        }
        let (group_digits, group_end) = match bytes.get(at) {
            Some(b'(') => {
                let n = digits_from(at + 1);
                if !(1..=4).contains(&n) || bytes.get(at + 1 + n) != Some(&b')') {
                    break;
                }
                (n, at + 2 + n)
            }
            Some(b) if b.is_ascii_digit() => {
                let n = digits_from(at);
                (n, at + n)
            }
            _ => break,
        };
        if digits + group_digits > 15 {
            break;
        }
        digits += group_digits;
        end = group_end;
    }
    (digits >= 9).then_some(end)
}

fn national_phone(text: &str, whole: Match<'_>) -> Option<Edit> {
    let bytes = text.as_bytes();
    let (start, end) = (whole.start(), whole.end());
    // Not the continuation of a dotted, dashed or colon-separated series of numbers.
    let continues_before = matches!(
        start.checked_sub(1).and_then(|i| bytes.get(i)),
        Some(b'.' | b'-' | b':')
    ) && start
        .checked_sub(2)
        .and_then(|i| bytes.get(i))
        .is_some_and(u8::is_ascii_digit);
    let continues_after = matches!(bytes.get(end), Some(b'.' | b'-' | b':'))
        && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
    (boundary_before(text, start)
        && boundary_after(text, end)
        && !continues_before
        && !continues_after
        && digit_count(whole.as_str()) >= 9)
        .then(|| Edit::new(start, end, PHONE))
}

/// Whether `t` looks like a credential rather than a word: long, or containing digits,
/// token punctuation or mixed case with an inner capital (`abcDEF`, not `Denied`/`BEARER`).
fn token_like(t: &str) -> bool {
    let len = t.chars().count();
    let mixed_case = t.chars().any(char::is_lowercase) && t.chars().skip(1).any(char::is_uppercase);
    len >= 20
        || (len >= 6
            && (mixed_case
                || t.bytes().any(|b| {
                    b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
                })))
}

fn digit_count(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether a match starting at `at` is not glued to a preceding word. A JSON escape
/// (`\n`, `\t`, `\u00e9`, ...) counts as a separator, not as part of a word.
fn boundary_before(text: &str, at: usize) -> bool {
    let Some(before) = text.get(..at) else {
        return false;
    };
    match before.chars().next_back() {
        None => true,
        Some(c) if !is_word(c) => true,
        Some(_) => ends_with_json_escape(before.as_bytes()),
    }
}

fn boundary_after(text: &str, at: usize) -> bool {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .is_none_or(|c| !is_word(c))
}

fn ends_with_json_escape(before: &[u8]) -> bool {
    let n = before.len();
    let short = matches!(before.last(), Some(b'n' | b't' | b'r' | b'b' | b'f'))
        && n.checked_sub(1)
            .and_then(|i| before.get(..i))
            .is_some_and(|b| trailing_backslashes(b) % 2 == 1);
    let unicode = n >= 6
        && before.get(n - 5) == Some(&b'u')
        && before
            .get(n - 4..)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        && before
            .get(..n - 5)
            .is_some_and(|b| trailing_backslashes(b) % 2 == 1);
    short || unicode
}

/// If `at` is the first character after an escaping backslash, the position after the
/// escape sequence (`\n` → 1 byte, `\uXXXX` → 5 bytes); `at` otherwise.
fn skip_escape(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    if bytes
        .get(..at)
        .is_none_or(|b| trailing_backslashes(b).is_multiple_of(2))
    {
        return at;
    }
    let unicode = bytes.get(at) == Some(&b'u')
        && bytes
            .get(at + 1..at + 5)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    if unicode {
        at + 5
    } else {
        at + text
            .get(at..)
            .and_then(|s| s.chars().next())
            .map_or(0, char::len_utf8)
    }
}

fn trailing_backslashes(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(|&&b| b == b'\\').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = include_str!("../testdata/redaction-corpus.txt");

    struct Case {
        line: usize,
        input: String,
        expected: String,
    }

    /// Parses `in:`/`out:` pairs; blank lines and `#` comments are skipped. Exactly one
    /// space after the colon is part of the syntax, the rest is the text.
    fn parse_corpus() -> Result<Vec<Case>, String> {
        let mut cases = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (index, line) in CORPUS.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            if let Some(text) = line.strip_prefix("in: ") {
                if let Some((open, _)) = pending {
                    return Err(format!("line {open}: `in:` without `out:`"));
                }
                pending = Some((number, text.to_owned()));
            } else if let Some(text) = line.strip_prefix("out: ") {
                let Some((line, input)) = pending.take() else {
                    return Err(format!("line {number}: `out:` without `in:`"));
                };
                cases.push(Case {
                    line,
                    input,
                    expected: text.to_owned(),
                });
            } else {
                return Err(format!(
                    "line {number}: expected `in: `, `out: `, `#` or a blank line"
                ));
            }
        }
        if let Some((open, _)) = pending {
            return Err(format!("line {open}: `in:` without `out:`"));
        }
        Ok(cases)
    }

    fn cases() -> Vec<Case> {
        let parsed = parse_corpus();
        assert!(
            parsed.is_ok(),
            "malformed corpus: {:?}",
            parsed.as_ref().err()
        );
        parsed.unwrap_or_default()
    }

    #[test]
    fn patterns_compile() {
        let compiled = Patterns::compile();
        assert!(
            compiled.is_ok(),
            "pattern does not compile: {:?}",
            compiled.err()
        );
        assert!(PATTERNS.is_some());
        assert_eq!(redact("plain"), "plain");
    }

    #[test]
    fn corpus() {
        let cases = cases();
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|case| {
                let got = redact(&case.input);
                (got != case.expected).then(|| {
                    format!(
                        "line {}:\n  in:       {}\n  expected: {}\n  got:      {}",
                        case.line, case.input, case.expected, got
                    )
                })
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} corpus cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn corpus_size() {
        let cases = cases();
        let negatives = cases.iter().filter(|c| c.input == c.expected).count();
        assert!(cases.len() >= 60, "only {} corpus cases", cases.len());
        assert!(negatives >= 20, "only {negatives} negative corpus cases");
    }

    #[test]
    fn unchanged_input_is_borrowed() {
        for case in cases().iter().filter(|c| c.input == c.expected) {
            assert!(
                matches!(redact(&case.input), Cow::Borrowed(s) if std::ptr::eq(s, case.input.as_str())),
                "line {}: unchanged input was not borrowed",
                case.line
            );
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        let failures: Vec<String> = cases()
            .iter()
            .filter(|c| redact(&c.expected) != c.expected)
            .map(|c| format!("line {}: {} -> {}", c.line, c.expected, redact(&c.expected)))
            .collect();
        assert!(
            failures.is_empty(),
            "redacting the expected output changed it:\n{}",
            failures.join("\n")
        );
    }

    /// Redaction never adds `"` or `\` (it may remove some, with a secret that contained
    /// escaped quotes), and a corpus line that is valid JSON stays valid JSON.
    #[test]
    fn json_stays_valid() {
        let mut failures = Vec::new();
        let mut json_lines = 0;
        for case in cases() {
            let got = redact(&case.input);
            for special in ['"', '\\'] {
                let before = case.input.matches(special).count();
                let after = got.matches(special).count();
                if after > before {
                    failures.push(format!(
                        "line {}: {before} `{special}` became {after}",
                        case.line
                    ));
                }
            }
            if json::valid(&case.input) {
                json_lines += 1;
                if !json::valid(&got) {
                    failures.push(format!(
                        "line {}: valid JSON became invalid: {got}",
                        case.line
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(
            json_lines >= 30,
            "only {json_lines} corpus inputs are valid JSON"
        );
    }

    #[test]
    fn json_checker_works() {
        assert!(json::valid(
            r#"{"a":[1,-2.5e3,true,null,"x\"\\\u00e9"],"b":{}}"#
        ));
        for bad in [
            r#"{"a":1"#,
            r#"{"a":[redacted]}"#,
            r#"{"a":"\["}"#,
            r#"{"a":411111******1111}"#,
            "{} x",
        ] {
            assert!(!json::valid(bad), "{bad}");
        }
    }

    /// A tiny deterministic generator (64-bit LCG), so the property test needs no crate.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    fn luhn_complete(mut digits: Vec<u8>) -> Vec<u8> {
        digits.push(0);
        let check = (0..10).find(|&c| {
            if let Some(last) = digits.last_mut() {
                *last = c;
            }
            luhn_valid(&digits)
        });
        if let (Some(last), Some(check)) = (digits.last_mut(), check) {
            *last = check;
        }
        digits
    }

    fn render(digits: &[u8], separator: Option<char>) -> String {
        let mut out = String::new();
        for (i, d) in digits.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.extend(separator);
            }
            out.push(char::from(b'0' + d));
        }
        out
    }

    #[test]
    fn generated_card_numbers() {
        let mut rng = Lcg(0x5eed);
        let mut failures = Vec::new();
        for round in 0..500 {
            let len = 13 + usize::try_from(rng.below(7)).unwrap_or(0);
            let mut digits = vec![2 + u8::try_from(rng.below(8)).unwrap_or(0)];
            digits.extend((1..len - 1).map(|_| u8::try_from(rng.below(10)).unwrap_or(0)));
            let digits = luhn_complete(digits);
            assert!(luhn_valid(&digits));
            let separator = [None, Some(' '), Some('-')]
                .get(round % 3)
                .copied()
                .flatten();
            let number = render(&digits, separator);
            let masked = mask_card(&digits, '*');
            let line =
                format!(r#"{{"level":"info","msg":"charge card {number} ok","latency_ms":12.5}}"#);
            let expected =
                format!(r#"{{"level":"info","msg":"charge card {masked} ok","latency_ms":12.5}}"#);
            if redact(&line) != expected {
                failures.push(format!("{line}\n  -> {}", redact(&line)));
            }
            // As a bare JSON number it must stay a number.
            if separator.is_none() {
                let line = format!(r#"{{"pan":{number},"n":1}}"#);
                let expected = format!(r#"{{"pan":{},"n":1}}"#, mask_card(&digits, '0'));
                if redact(&line) != expected || !json::valid(&redact(&line)) {
                    failures.push(format!("{line}\n  -> {}", redact(&line)));
                }
            }
            // A wrong check digit: left alone (plain and dashed runs are all-or-nothing).
            let mut wrong = digits.clone();
            if let Some(last) = wrong.last_mut() {
                *last = (*last + 1 + u8::try_from(rng.below(9)).unwrap_or(0)) % 10;
            }
            let separator = if round % 2 == 0 { None } else { Some('-') };
            let line = format!(r#"{{"msg":"order {} shipped"}}"#, render(&wrong, separator));
            if redact(&line) != line {
                failures.push(format!(
                    "Luhn-invalid changed: {line}\n  -> {}",
                    redact(&line)
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Random JSON log lines assembled from tricky fragments (escapes, secrets, numbers
    /// next to each other) stay valid JSON and gain no `"` or `\`.
    #[test]
    fn random_json_lines_stay_valid() {
        const KEYS: [&str; 8] = [
            "msg",
            "password",
            "Token",
            "phone",
            "body",
            "email",
            "x-api-key",
            "note",
        ];
        const FRAGMENTS: [&str; 28] = [
            "jane@acme.io",
            r"\n",
            r"\t",
            r#"\""#,
            r"\\",
            r"\u00e9",
            r"\\u0041",
            " ",
            ":",
            "=",
            "&",
            "+44 20 7946 0958",
            "4111 1111 1111 1111",
            "4111111111111111",
            "%40",
            "%2B1415",
            "Bearer abcDEF123456",
            "password=hunter2",
            r#"\"password\":\"x\""#,
            r#"\\\"token\\\":\\\"y\\\""#,
            "eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.abc",
            "lg_live_abc123",
            "https://u:p@h.io/",
            "(415) 555-0100",
            "Authorization: Basic dXNlcg==",
            "0",
            "a",
            ".",
        ];
        let mut rng = Lcg(42);
        let mut pick = |n: usize| usize::try_from(rng.below(n as u64)).unwrap_or(0);
        let mut failures = Vec::new();
        for _ in 0..3000 {
            let mut line = String::from("{");
            for field in 0..=pick(4) {
                if field > 0 {
                    line.push(',');
                }
                line.push('"');
                line.push_str(KEYS[pick(KEYS.len())]);
                line.push_str(&field.to_string());
                line.push_str("\":");
                if pick(5) == 0 {
                    line.push_str(["4111111111111111", "12.5", "null", "true", "-3"][pick(5)]);
                } else {
                    line.push('"');
                    for _ in 0..pick(8) {
                        line.push_str(FRAGMENTS[pick(FRAGMENTS.len())]);
                    }
                    line.push('"');
                }
            }
            line.push('}');
            if !json::valid(&line) {
                failures.push(format!("generator produced invalid JSON: {line}"));
                continue;
            }
            let got = redact(&line);
            let more = |c: char| got.matches(c).count() > line.matches(c).count();
            if !json::valid(&got) || more('"') || more('\\') {
                failures.push(format!("{line}\n  -> {got}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn escaped_json_at_any_depth() {
        let level2 = r#"{"msg":"{\"body\":\"{\\\"password\\\":\\\"p\\\\\\\"w\\\"}\"}"}"#;
        let want = r#"{"msg":"{\"body\":\"{\\\"password\\\":\\\"[redacted]\\\"}\"}"}"#;
        assert!(json::valid(level2));
        assert_eq!(redact(level2), want);
        assert!(json::valid(want));
    }

    /// Minimal JSON validator (RFC 8259 grammar), since `serde_json` is not a dependency.
    mod json {
        pub fn valid(s: &str) -> bool {
            let mut p = Parser {
                b: s.as_bytes(),
                i: 0,
            };
            p.ws();
            p.value() && {
                p.ws();
                p.i == p.b.len()
            }
        }

        struct Parser<'a> {
            b: &'a [u8],
            i: usize,
        }

        impl Parser<'_> {
            fn peek(&self) -> Option<u8> {
                self.b.get(self.i).copied()
            }
            fn eat(&mut self, c: u8) -> bool {
                let hit = self.peek() == Some(c);
                if hit {
                    self.i += 1;
                }
                hit
            }
            fn ws(&mut self) {
                while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                    self.i += 1;
                }
            }
            fn literal(&mut self, word: &str) -> bool {
                let hit = self.b.get(self.i..self.i + word.len()) == Some(word.as_bytes());
                if hit {
                    self.i += word.len();
                }
                hit
            }
            fn value(&mut self) -> bool {
                match self.peek() {
                    Some(b'{') => self.container(b'}', true),
                    Some(b'[') => self.container(b']', false),
                    Some(b'"') => self.string(),
                    Some(b't') => self.literal("true"),
                    Some(b'f') => self.literal("false"),
                    Some(b'n') => self.literal("null"),
                    _ => self.number(),
                }
            }
            fn container(&mut self, close: u8, object: bool) -> bool {
                self.i += 1;
                self.ws();
                if self.eat(close) {
                    return true;
                }
                loop {
                    if object {
                        if !self.string() {
                            return false;
                        }
                        self.ws();
                        if !self.eat(b':') {
                            return false;
                        }
                        self.ws();
                    }
                    if !self.value() {
                        return false;
                    }
                    self.ws();
                    if self.eat(close) {
                        return true;
                    }
                    if !self.eat(b',') {
                        return false;
                    }
                    self.ws();
                }
            }
            fn string(&mut self) -> bool {
                if !self.eat(b'"') {
                    return false;
                }
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match c {
                        b'"' => return true,
                        b'\\' => match self.peek() {
                            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                                self.i += 1;
                            }
                            Some(b'u') => {
                                let hex = self.b.get(self.i + 1..self.i + 5);
                                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                    return false;
                                }
                                self.i += 5;
                            }
                            _ => return false,
                        },
                        c if c < 0x20 => return false,
                        _ => {}
                    }
                }
                false
            }
            fn digits(&mut self) -> usize {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                self.i - start
            }
            fn number(&mut self) -> bool {
                self.eat(b'-');
                if !self.eat(b'0')
                    && (!self.peek().is_some_and(|c| (b'1'..=b'9').contains(&c))
                        || self.digits() == 0)
                {
                    return false;
                }
                if self.eat(b'.') && self.digits() == 0 {
                    return false;
                }
                if self.eat(b'e') || self.eat(b'E') {
                    if !self.eat(b'+') {
                        self.eat(b'-');
                    }
                    if self.digits() == 0 {
                        return false;
                    }
                }
                true
            }
        }
    }
}
