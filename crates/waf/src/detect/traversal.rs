//! Path traversal: climbing out of a directory (`../../`, `..\`, `..;/`) and naming the files an
//! attacker wants (`/etc/passwd`, `win.ini`, `.ssh/id_rsa`).
//!
//! A single `../` is common in prose and relative links ("Ran ../setup.sh last week"), so it is
//! weak evidence unless it comes with more traversal, a sensitive target, a NUL byte, or sits in
//! a file name where it never belongs.

use super::{CRITICAL, ERROR, Hits, Input, NOTICE, WARNING};
use crate::extract::FieldKind;

/// Files and directories whose mention in a request parameter is an attack on its own. Sorted,
/// so the entries sharing a first byte are one range of [`BY_FIRST_BYTE`].
const SENSITIVE: &[&str] = &[
    ".aws/config",
    ".aws/credentials",
    ".bash_history",
    ".bashrc",
    ".docker/config.json",
    ".env",
    ".git/config",
    ".git/head",
    ".htaccess",
    ".htpasswd",
    ".kube/config",
    ".ssh/authorized_keys",
    ".ssh/id_dsa",
    ".ssh/id_ecdsa",
    ".ssh/id_ed25519",
    ".ssh/id_rsa",
    ".ssh/known_hosts",
    "apache/conf/",
    "apache/logs/",
    "apache2.conf",
    "apache2/logs/",
    "boot.ini",
    "config.php",
    "etc/apache/",
    "etc/apache2/",
    "etc/crontab",
    "etc/environment",
    "etc/fstab",
    "etc/group",
    "etc/hosts",
    "etc/httpd/",
    "etc/inittab",
    "etc/issue",
    "etc/lsb-release",
    "etc/master.passwd",
    "etc/motd",
    "etc/mtab",
    "etc/mysql/",
    "etc/nginx/",
    "etc/os-release",
    "etc/pam.d",
    "etc/passwd",
    "etc/php",
    "etc/profile",
    "etc/redhat-release",
    "etc/resolv.conf",
    "etc/security/",
    "etc/shadow",
    "etc/ssh/",
    "etc/sudoers",
    "httpd.conf",
    "inetpub/wwwroot",
    "localsettings.php",
    "meta-inf/manifest",
    "my.cnf",
    "my.ini",
    "nginx.conf",
    "opt/lampp/",
    "php.ini",
    "proc/cpuinfo",
    "proc/meminfo",
    "proc/mounts",
    "proc/net/",
    "proc/self/",
    "proc/sys/",
    "proc/version",
    "root/.",
    "system.ini",
    "system32/config/sam",
    "system32/drivers/etc/",
    "usr/local/apache",
    "usr/local/etc",
    "var/lib/mysql",
    "var/log/",
    "var/run/secrets",
    "var/www/",
    "web-inf/web.xml",
    "web.config",
    "win.ini",
    "windows/panther/",
    "windows/repair/",
    "windows/system.ini",
    "windows/system32",
    "windows/win.ini",
    "winnt/system32",
    "wp-config.php",
    "xampp/",
];

/// For each first byte, the range of [`SENSITIVE`] entries starting with it (empty for most).
const BY_FIRST_BYTE: [(usize, usize); 256] = {
    let mut r = [(0, 0); 256];
    let mut i = 0;
    while i < SENSITIVE.len() {
        let c = SENSITIVE[i].as_bytes()[0] as usize;
        if r[c].1 == 0 {
            r[c].0 = i;
        }
        r[c].1 = i + 1;
        i += 1;
    }
    r
};

/// Whether `b` names a sensitive file. Entries are anchored — after a separator or at the start
/// (dotfiles anywhere) — and must not continue into a longer name (`.env` vs `.environment`).
/// Only candidate positions are tried, so this is a few byte compares per value, not one
/// substring search per list entry.
fn mentions_sensitive_file(b: &[u8]) -> bool {
    (0..b.len()).any(|p| {
        let (from, to) = BY_FIRST_BYTE[usize::from(b[p])];
        if from == to {
            return false;
        }
        let anchored = p == 0 || matches!(b[p - 1], b'/' | b'~' | b'=' | b' ' | b':');
        if !anchored && b[p] != b'.' {
            return false;
        }
        SENSITIVE[from..to].iter().any(|f| {
            let f = f.as_bytes();
            // Two bytes before the full compare: most candidates differ in the second.
            if b.get(p + 1) != f.get(1) || (f[0] != b'.' && !anchored) || !b[p..].starts_with(f) {
                return false;
            }
            let next = b.get(p + f.len()).copied();
            f.ends_with(b"/") || next.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'_')
        })
    })
}

/// The value as a file API would read a path in it: Windows and Unix separators alike, and the
/// spellings of `.`, `/` and `\\` that decoders along the way have turned into the real thing —
/// look-alike Unicode (`∕` U+2215, `∖` U+2216, `⁄`, `⧵`, `﹨`, `‥`, `․`), the `0x2e`/`0x2f`/`0x5c`
/// notation of traversal fuzzers, and the invalid two-byte sequences (`%c0%2f`, `%c1%1c`) that
/// old decoders read without checking the continuation byte, which reach us as `À`/`Á` and an
/// ASCII byte.
fn path_view(raw: &str) -> std::borrow::Cow<'_, str> {
    let special = |c: char| {
        matches!(
            c,
            '\\' | '\u{2215}'
                | '\u{2216}'
                | '\u{2044}'
                | '\u{29f5}'
                | '\u{29f8}'
                | '\u{fe68}'
                | '\u{efc8}'
                | '\u{f025}'
                | '\u{2024}'
                | '\u{2025}'
                | '\u{fe52}'
                | '\u{c0}'
                | '\u{c1}'
        )
    };
    let hex_notation = raw.contains("0x");
    let odd = raw
        .bytes()
        .any(|c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')) || c == b'?');
    if !hex_notation && !odd && !raw.chars().any(special) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    let rest = |i: usize| raw.get(i..).unwrap_or("");
    let mut at = 0usize;
    while let Some(c) = chars.next() {
        let here = at;
        at += c.len_utf8();
        match c {
            '\\' | '\u{2215}' | '\u{2216}' | '\u{2044}' | '\u{29f5}' | '\u{29f8}' | '\u{fe68}'
            // Private-use code points that IIS-era decoders mapped to a separator.
            | '\u{efc8}' | '\u{f025}' => {
                out.push('/');
            }
            '\u{2024}' | '\u{fe52}' => out.push('.'),
            // Control characters inside a path (`..%01/`, `.%00.`): what a file API skips or a
            // filter leaves out, never part of a name.
            '\u{1}'..='\u{1f}' if !matches!(c, '\t' | '\n' | '\r') => {}
            // `?` where a dot belongs (`.?/`, `??/`): a wildcard that matches the dot.
            '?' if matches!(out.as_bytes().last(), Some(b'.' | b'?'))
                || (chars.peek() == Some(&'.') || chars.peek() == Some(&'?')) =>
            {
                out.push('.');
            }
            '\u{2025}' => out.push_str(".."),
            // A stray overlong lead byte: the ASCII byte after it is what the old decoder read,
            // directly (`%c0%2f`) or through the lead's low bits (`%c1%1c` is `\\`).
            '\u{c0}' | '\u{c1}' if chars.peek().is_some_and(char::is_ascii) => {
                let next = chars.next().map_or(0, |n| n as u8);
                at += 1;
                let lead_bits = if c == '\u{c1}' { 0x40 } else { 0 };
                let decoded = char::from(lead_bits | (next & 0x3f));
                let direct = char::from(next);
                out.push(match (decoded, direct) {
                    ('/' | '\\' | '.', _) => {
                        if decoded == '\\' {
                            '/'
                        } else {
                            decoded
                        }
                    }
                    (_, '\\') => '/',
                    (_, d) => d,
                });
            }
            '0' if hex_notation
                && matches!(
                    rest(here).get(..4).map(str::to_ascii_lowercase).as_deref(),
                    Some("0x2e" | "0x2f" | "0x5c")
                ) =>
            {
                let code = rest(here).as_bytes()[3].to_ascii_lowercase();
                out.push(match code {
                    b'e' => '.',
                    _ => '/',
                });
                for _ in 0..3 {
                    chars.next();
                }
                at += 3;
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Runs the path traversal rules on one value.
pub(crate) fn detect(input: &Input<'_>, hits: &mut Hits) {
    let raw = input.text;
    if input.had_null {
        // NUL truncation (`../../etc/passwd%00.png`) is weak alone, decisive with a path.
        hits.add(1, "path.null_byte", NOTICE);
    }
    // Separators and dots, or their look-alikes (multi-byte, led by 0xE2, 0xEF or, for the
    // stray overlong leads, 0xC3) and the `0x2f` notation.
    let p = input.profile;
    if !p.any_byte(b"./\\:\xe2\xee\xef\xc3") && !p.grams.has(raw, "0x") {
        return;
    }
    let s = path_view(raw);
    let b = s.as_bytes();

    // Count `..` segments: `..` between separators (or at the ends), including `...` and
    // `..;` (servlet path parameters) which some servers treat as parent references.
    let mut dotdot = 0u32;
    let mut backslash_dotdot = false;
    let mut i = 0;
    while let Some(p) = s.get(i..).and_then(|r| super::find_from(r, "..", 0)) {
        let at = i + p;
        let start_ok = at == 0
            || matches!(
                b[at - 1],
                b'/' | b' ' | b'=' | b'"' | b'\'' | b':' | b';' | b'.'
            );
        let mut end = at + 2;
        while end < b.len() && b[end] == b'.' {
            end += 1;
        }
        if end < b.len() && b[end] == b';' {
            end += 1;
            hits.add(1, "path.servlet_traversal", CRITICAL);
        }
        let end_ok = end >= b.len() || b[end] == b'/';
        if start_ok && end_ok {
            dotdot += 1;
            // `..\\` is Windows' own traversal, never prose.
            backslash_dotdot |= raw.contains("..\\");
        }
        i = end.max(at + 2);
    }

    let sensitive = mentions_sensitive_file(b);
    // The whole value is parent references and separators (`../`, `..\\`, `%c0%ae%c0%ae%c0%af`):
    // a traversal probe, which nothing but a path walker sends.
    let lone = {
        let v = s.trim();
        v.len() >= 3
            && v.contains("..")
            && v.contains('/')
            && v.bytes().all(|c| matches!(c, b'.' | b'/' | b';'))
    };
    if lone {
        hits.add(1, "path.traversal", CRITICAL);
    }

    if dotdot >= 2 {
        hits.add(1, "path.traversal", CRITICAL);
    } else if dotdot == 1 {
        let filename = matches!(input.kind, FieldKind::Filename);
        let at_start = s.starts_with("../") || s.starts_with("..;") || s == "..";
        if filename || backslash_dotdot || (at_start && (sensitive || input.had_null)) {
            hits.add(1, "path.traversal", CRITICAL);
        } else if at_start {
            hits.add(2, "path.traversal", CRITICAL);
            hits.add(1, "path.relative_path", NOTICE);
        } else {
            hits.add(3, "path.traversal", ERROR);
        }
    }
    if sensitive {
        hits.add(1, "path.sensitive_file", CRITICAL);
        // The whole value is the path (`/etc/passwd`, `c:\\boot.ini%00`), not a sentence that
        // mentions one: nobody's name, title or note is only a path to a system secret.
        if !s.trim().contains(char::is_whitespace) {
            hits.add(1, "path.sensitive_path", CRITICAL);
        }
    }
    // Absolute Windows paths (`c:\windows`, `c:/boot.ini`) in a parameter.
    if b.len() > 3
        && let Some(p) = super::find_from(&s, ":/", 0)
        && p >= 1
        && b[p - 1].is_ascii_alphabetic()
        && (p == 1 || !b[p - 2].is_ascii_alphanumeric())
        && !s[..p].ends_with("http")
    {
        if super::has(&s[p..], "windows")
            || super::has(&s[p..], "winnt")
            || super::has(&s[p..], "inetpub")
            || super::has(&s[p..], "users/")
        {
            hits.add(1, "path.windows_absolute", CRITICAL);
        } else {
            hits.add(2, "path.windows_absolute", WARNING);
        }
    }
    if super::has(&s, "file:/") {
        hits.add(1, "path.file_url", CRITICAL);
    }
    // A Windows administrative share (`\\\\host\\c$\\`): a whole disk by UNC path.
    if let Some(p) = super::find_from(&s, "//", 0)
        && let Some(share) = s[p + 2..].find('/').map(|q| &s[p + 2 + q + 1..])
        && share.len() >= 2
        && share.as_bytes()[0].is_ascii_alphabetic()
        && share.as_bytes()[1] == b'$'
        && share.as_bytes().get(2).is_none_or(|c| *c == b'/')
    {
        hits.add(1, "path.admin_share", CRITICAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: &str, kind: FieldKind, pl: u8) -> u32 {
        let mut hits = Hits::new(pl);
        let n = crate::normalize::normalize(s, 3);
        detect(
            &Input {
                text: &n.text,
                had_null: n.had_null,
                kind,
                profile: &super::super::Profile::new(&n.text),
            },
            &mut hits,
        );
        hits.list.iter().map(|h| h.score).sum()
    }

    #[test]
    fn attacks() {
        for a in [
            "../../../etc/passwd",
            "..%2f..%2f..%2fetc%2fpasswd",
            "%252e%252e%252f%252e%252e%252fwin.ini",
            "..%c0%af..%c0%afetc",
            "..\\..\\windows\\win.ini",
            "..\\pineapple",
            "/etc/passwd",
            "..;/admin",
            "c:\\windows\\system32\\cmd.exe",
            "../../config.php%00.png",
            ".../.../WINDOWS/win.ini",
            // Look-alike separators and dots, fuzzers' hex notation, unchecked overlong bytes.
            "..%u2215..%u2215etc%u2215passwd",
            "%uff0e%uff0e%u2216%uff0e%uff0e%u2216boot.ini",
            "..0x2f..0x2f..0x2fetc0x2fpasswd",
            "0x2e0x2e0x5c0x2e0x2e0x5cwindows0x5cwin.ini",
            "..%c0%2f..%c0%2fetc%c0%2fshadow",
            "..%c1%1c..%c1%1cwinnt%c1%1cwin.ini",
            "\u{2025}/\u{2025}/etc/hosts",
            "\\\\localhost\\c$\\inetpub\\logs",
            "/usr/local/apache/conf/httpd.conf",
            "../",
            "..%5c",
            "%c0%ae%c0%ae%c0%af",
        ] {
            assert!(score(a, FieldKind::Value, 1) >= 5, "missed {a:?}");
        }
        assert!(score("../1.7z", FieldKind::Filename, 1) >= 5);
    }

    #[test]
    fn sensitive_files_are_sorted_for_the_first_byte_index() {
        assert!(SENSITIVE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn business_text() {
        for b in [
            "Ran ../setup.sh last week, still failing on their side",
            "https://select.example.com/?utm_source=linkedin",
            "Director - IT/Security",
            "Wait... what?",
            "v2.0..v2.1 changelog",
            "Head of Growth/Demand Gen",
            "Colour code 0x2f2f2f on the deck",
            "Àlex ../notes",
            "...",
            "Wait.../what?",
        ] {
            assert!(score(b, FieldKind::Value, 1) < 5, "false positive {b:?}");
        }
    }
}
