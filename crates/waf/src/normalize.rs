//! Turning an attacker-controlled value into the one canonical form the detectors read.
//!
//! Attackers hide payloads behind encodings the application (or the browser, or the database)
//! will undo later: double URL encoding, `%u` escapes, HTML entities, overlong UTF-8, full-width
//! Unicode, zero-width characters and NUL bytes. Detectors only ever see the result of undoing all
//! of those, so each detector is written once against plain lower-case ASCII-ish text.
//!
//! Every step is bounded: decoding repeats at most `max_decode_passes` times and every pass is a
//! single linear scan, so hostile input cannot make normalisation expensive.

use std::borrow::Cow;

/// A normalised value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// Decoded, case-folded (ASCII lower-case), Unicode-folded text without NUL bytes: the value
    /// itself when it is already in that form (most paths, emails, URLs, ids).
    pub text: Cow<'a, str>,
    /// The value contained a NUL byte (raw or encoded) — a classic string-truncation trick.
    pub had_null: bool,
}

/// Fully normalises `raw` (which the extractor has already URL-decoded once where the transport
/// encoding calls for it).
#[must_use]
pub fn normalize(raw: &str, max_passes: u8) -> Normalized<'_> {
    if raw
        .bytes()
        .all(|b| b.is_ascii() && b != 0 && b != b'%' && b != b'&' && !b.is_ascii_uppercase())
    {
        return Normalized {
            text: Cow::Borrowed(raw),
            had_null: false,
        };
    }
    // Fast path: nothing to decode, which is the overwhelmingly common case for business data.
    let needs_decoding = raw.bytes().any(|b| b == b'%' || b == b'&');
    let decoded: Cow<'_, str> = if needs_decoding {
        Cow::Owned(decode_repeatedly(raw, max_passes))
    } else {
        Cow::Borrowed(raw)
    };
    let folded = fold(&decoded);
    // Full-width `％` / `＆` only become syntax after folding; give them one more decode round.
    if !decoded.is_ascii() && folded.text.bytes().any(|b| b == b'%' || b == b'&') {
        let again = fold(&decode_repeatedly(&folded.text, max_passes));
        return Normalized {
            text: again.text,
            had_null: folded.had_null || again.had_null,
        };
    }
    folded
}

/// Repeats URL-decoding and HTML-entity decoding until the value stops changing (or the pass
/// budget is spent), so `%2527` and `&amp;lt;` reach their final form.
fn decode_repeatedly(raw: &str, max_passes: u8) -> String {
    let mut cur = raw.to_owned();
    for _ in 0..max_passes {
        let mut changed = false;
        if cur.contains('%')
            && let Some(bytes) = percent_decode(cur.as_bytes())
        {
            cur = lenient_utf8(&bytes);
            changed = true;
        }
        if cur.contains('&')
            && let Some(s) = decode_entities(&cur)
        {
            cur = s;
            changed = true;
        }
        if !changed {
            break;
        }
    }
    cur
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A hex digit as IIS read it: any letter counts, from `a` = 10 on.
fn lax_hex_val(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'z' | b'A'..=b'Z' => Some(u16::from(b.to_ascii_lowercase() - b'a') + 10),
        _ => None,
    }
}

/// One pass of `%XX` / `%uXXXX` decoding; `None` when there was nothing to decode. `+` is left
/// alone: form-encoding's `+` is undone once by the extractor, and a later literal `+` is data.
pub fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            // %uXXXX: IIS-style Unicode escape, still honoured by some stacks.
            if i + 5 < input.len()
                && matches!(input[i + 1], b'u' | b'U')
                && let (Some(a), Some(b2), Some(c), Some(d)) = (
                    hex_val(input[i + 2]),
                    hex_val(input[i + 3]),
                    hex_val(input[i + 4]),
                    hex_val(input[i + 5]),
                )
            {
                let cp = (u32::from(a) << 12)
                    | (u32::from(b2) << 8)
                    | (u32::from(c) << 4)
                    | u32::from(d);
                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
            if i + 2 < input.len()
                && let (Some(h), Some(l)) = (hex_val(input[i + 1]), hex_val(input[i + 2]))
            {
                out.push((h << 4) | l);
                i += 3;
                changed = true;
                continue;
            }
            // IIS's decoder took any letter as a hex digit (`g` as 16, `q` as 26) and kept the
            // low byte, so `%c0%qf`, `%bg%qf` and `%c1%pc` reached the file system as the
            // overlong `/` and `\\`. Read such triplets the same way, but only where they form
            // or complete an overlong lead (`C0`/`C1`): "50%off" stays text.
            if i + 2 < input.len()
                && let (Some(h), Some(l)) = (lax_hex_val(input[i + 1]), lax_hex_val(input[i + 2]))
            {
                let v = ((h * 16 + l) & 0xFF) as u8;
                let completes = matches!(out.last(), Some(0xC0 | 0xC1)) && v & 0xC0 == 0x80;
                let leads = matches!(v, 0xC0 | 0xC1) && input.get(i + 3) == Some(&b'%');
                if completes || leads {
                    out.push(v);
                    i += 3;
                    changed = true;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// Form-style decoding for query strings and urlencoded bodies: `+` is a space, then `%XX`.
#[must_use]
pub fn form_decode(input: &str) -> Cow<'_, str> {
    if !input.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(input);
    }
    let spaced: Vec<u8> = input
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    Cow::Owned(match percent_decode(&spaced) {
        Some(bytes) => lenient_utf8(&bytes),
        None => lenient_utf8(&spaced),
    })
}

/// UTF-8 decoding that maps overlong encodings to the character they (illegally) spell — `C0 AF`
/// is `/` to some old decoders, so it must be `/` to us — and replaces other invalid bytes with
/// U+FFFD instead of failing.
#[must_use]
pub fn lenient_utf8(bytes: &[u8]) -> String {
    lenient_utf8_cow(bytes).into_owned()
}

/// [`lenient_utf8`], borrowing `bytes` when they are valid UTF-8 already.
#[must_use]
pub fn lenient_utf8_cow(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let cont = |k: usize| bytes.get(i + k).copied().filter(|c| c & 0xC0 == 0x80);
        // Overlong two-byte form of an ASCII character.
        if (b == 0xC0 || b == 0xC1)
            && let Some(c1) = cont(1)
        {
            out.push(char::from(((b & 0x1F) << 6) | (c1 & 0x3F)));
            i += 2;
            continue;
        }
        // Overlong three-byte form (E0 80..9F xx).
        if b == 0xE0
            && let (Some(c1), Some(c2)) = (cont(1), cont(2))
            && c1 < 0xA0
        {
            let cp = (u32::from(c1 & 0x3F) << 6) | u32::from(c2 & 0x3F);
            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            i += 3;
            continue;
        }
        // Overlong four-, five- and six-byte forms (F0 80 80 xx, F8 80 80 80 xx,
        // FC 80 80 80 80 xx) that spell an ASCII character: what traversal fuzzers send for `/`.
        let long = match b {
            0xF0 => 4,
            0xF8 => 5,
            0xFC => 6,
            _ => 0,
        };
        if long > 0
            && (1..long - 1).all(|k| cont(k) == Some(0x80))
            && let Some(last) = cont(long - 1)
        {
            out.push(char::from(last & 0x3F));
            i += long;
            continue;
        }
        // Otherwise decode the longest valid sequence starting here, or replace one byte.
        let len = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        match bytes.get(i..i + len).map(std::str::from_utf8) {
            Some(Ok(s)) if len > 1 => {
                out.push_str(s);
                i += len;
            }
            // A byte that is not UTF-8 reads as Latin-1, as a database with that character set
            // would read it (`%A0` is a no-break space there, which separates SQL words).
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Named entities worth knowing: the ones that spell syntax. Unknown names are left as text, so
/// "AT&T" and "R&D" survive untouched.
fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "tab" => '\t',
        "newline" => '\n',
        "colon" => ':',
        "semi" => ';',
        "lpar" => '(',
        "rpar" => ')',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lcub" | "lbrace" => '{',
        "rcub" | "rbrace" => '}',
        "sol" => '/',
        "bsol" => '\\',
        "grave" => '`',
        "equals" => '=',
        "excl" => '!',
        "num" => '#',
        "dollar" => '$',
        "percnt" => '%',
        "plus" => '+',
        "comma" => ',',
        "period" => '.',
        "quest" => '?',
        "vert" | "verbar" => '|',
        "ast" => '*',
        "hyphen" | "dash" => '-',
        "commat" => '@',
        _ => return None,
    })
}

/// One pass of HTML entity decoding (named, decimal, hex; the trailing `;` optional where browsers
/// accept it without). `None` when nothing was decoded.
#[must_use]
pub fn decode_entities(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'&' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let decoded: Option<char> = if bytes.get(j) == Some(&b'#') {
            j += 1;
            let hex = matches!(bytes.get(j), Some(b'x' | b'X'));
            if hex {
                j += 1;
            }
            let digits_start = j;
            let mut cp: u32 = 0;
            while j < bytes.len() && j - digits_start < 10 {
                let d = if hex {
                    hex_val(bytes[j]).map(u32::from)
                } else {
                    bytes[j]
                        .is_ascii_digit()
                        .then(|| u32::from(bytes[j] - b'0'))
                };
                match d {
                    Some(d) => {
                        cp = cp
                            .saturating_mul(if hex { 16 } else { 10 })
                            .saturating_add(d);
                        j += 1;
                    }
                    None => break,
                }
            }
            if j > digits_start {
                Some(char::from_u32(cp).unwrap_or('\u{fffd}'))
            } else {
                None
            }
        } else {
            let name_start = j;
            while j < bytes.len() && bytes[j].is_ascii_alphanumeric() && j - name_start < 10 {
                j += 1;
            }
            let name = s.get(name_start..j).unwrap_or("").to_ascii_lowercase();
            let has_semi = bytes.get(j) == Some(&b';');
            // Without `;` only the legacy core entities decode (as browsers do).
            named_entity(&name)
                .filter(|_| has_semi || matches!(name.as_str(), "lt" | "gt" | "amp" | "quot"))
        };
        match decoded {
            Some(c) => {
                if bytes.get(j) == Some(&b';') {
                    j += 1;
                }
                out.push_str(s.get(last..start).unwrap_or(""));
                out.push(c);
                last = j;
                i = j;
                changed = true;
            }
            None => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    Some(out)
}

/// Case and Unicode folding: ASCII lower-case, full-width forms to ASCII, typographic quotes to
/// ASCII quotes, exotic spaces to a space; zero-width characters and NUL removed.
fn fold(s: &str) -> Normalized<'static> {
    let mut had_null = false;
    if s.is_ascii() && !s.as_bytes().contains(&0) {
        // Plain ASCII (most business data): lower-casing is all there is to do.
        return Normalized {
            text: s.to_ascii_lowercase().into(),
            had_null,
        };
    }
    let mut text = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            '\0' => {
                had_null = true;
                continue;
            }
            'A'..='Z' => c.to_ascii_lowercase(),
            c if c.is_ascii() => c,
            // Full-width ASCII block.
            '\u{ff01}'..='\u{ff5e}' => {
                let folded = char::from_u32(u32::from(c) - 0xfee0).unwrap_or(c);
                folded.to_ascii_lowercase()
            }
            '\u{2018}' | '\u{2019}' | '\u{201b}' | '\u{00b4}' | '\u{02bc}' | '\u{2032}' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{2033}' => '"',
            '\u{fe64}' | '\u{02c2}' => '<',
            '\u{fe65}' | '\u{02c3}' => '>',
            '\u{00a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => ' ',
            '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}' => continue,
            c => c,
        };
        text.push(c);
    }
    Normalized {
        text: text.into(),
        had_null,
    }
}

/// Decodes JavaScript / CSS string escapes (`\x3c`, `\u003c`, `\u{3c}`, `\3c `) for the XSS view.
/// Returns `None` when the text has no backslash escapes.
#[must_use]
pub fn decode_js_escapes(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let hex_run = |from: usize, max: usize| {
            let mut j = from;
            let mut v: u32 = 0;
            while j < b.len() && j - from < max {
                match hex_val(b[j]) {
                    Some(d) => v = v * 16 + u32::from(d),
                    None => break,
                }
                j += 1;
            }
            (v, j)
        };
        let (cp, end) = match b.get(i + 1) {
            Some(b'x') => {
                let (v, j) = hex_run(i + 2, 2);
                if j == i + 4 {
                    (Some(v), j)
                } else {
                    (None, i + 1)
                }
            }
            Some(b'u') if b.get(i + 2) == Some(&b'{') => {
                let (v, j) = hex_run(i + 3, 6);
                if j > i + 3 && b.get(j) == Some(&b'}') {
                    (Some(v), j + 1)
                } else {
                    (None, i + 1)
                }
            }
            Some(b'u') => {
                let (v, j) = hex_run(i + 2, 4);
                if j == i + 6 {
                    (Some(v), j)
                } else {
                    (None, i + 1)
                }
            }
            _ => (None, i + 1),
        };
        match cp.and_then(char::from_u32) {
            Some(c) => {
                out.push_str(s.get(last..i).unwrap_or(""));
                out.push(c.to_ascii_lowercase());
                last = end;
                i = end;
                changed = true;
            }
            None => i = end,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_url_decoding_and_entities() {
        assert_eq!(normalize("%2527%20OR%201=1", 3).text, "' or 1=1");
        assert_eq!(normalize("&amp;lt;script&gt;", 3).text, "<script>");
        assert_eq!(normalize("%u003cSCRIPT%u003e", 3).text, "<script>");
        assert_eq!(normalize("&#x3C;img&#60", 3).text, "<img<");
        assert_eq!(normalize("ja&Tab;vascript&colon;", 3).text, "ja\tvascript:");
    }

    #[test]
    fn business_text_survives() {
        assert_eq!(normalize("AT&T R&D Q&A", 3).text, "at&t r&d q&a");
        assert_eq!(normalize("~30% off, 100%", 3).text, "~30% off, 100%");
        assert_eq!(normalize("Ben &amp; Jerry's", 3).text, "ben & jerry's");
    }

    #[test]
    fn overlong_utf8_unicode_and_nul() {
        assert_eq!(normalize("..%c0%af..%c0%afetc", 3).text, "../../etc");
        // IIS's lax hex digits, only where they spell an overlong byte pair.
        assert_eq!(normalize("..%c0%qf..%bg%qfetc", 3).text, "../../etc");
        assert_eq!(
            normalize("..%c1%pc..%c1%8sboot.ini", 3).text,
            "..\\..\\boot.ini"
        );
        assert_eq!(normalize("50%off", 3).text, "50%off");
        assert_eq!(normalize("％３Ｃscript", 3).text, "<script");
        assert_eq!(normalize("＜ＳＣＲＩＰＴ＞", 3).text, "<script>");
        assert_eq!(normalize("sel\u{200b}ect", 3).text, "select");
        let n = normalize("file.php%00.jpg", 3);
        assert!(n.had_null);
        assert_eq!(n.text, "file.php.jpg");
        assert_eq!(normalize("O\u{2019}Brien", 3).text, "o'brien");
    }

    #[test]
    fn decode_budget_is_bounded() {
        // Four layers of encoding with two passes leaves the last layers encoded.
        assert_eq!(normalize("%25252527", 2).text, "%2527");
    }

    #[test]
    fn js_escapes() {
        assert_eq!(
            decode_js_escapes(r"\x3cscript\u003e \u{61}").as_deref(),
            Some("<script> a")
        );
        assert_eq!(decode_js_escapes("no escapes"), None);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("Head+of+R%26D"), "Head of R&D");
        assert_eq!(form_decode("caf%C3%A9"), "café");
    }
}
