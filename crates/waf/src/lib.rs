//! LeadGen's web application firewall: pure request inspection (no I/O, no clock).
//!
//! # What it does
//!
//! [`Engine::inspect`] takes a borrowed [`Request`] (method, path, query, headers, content type,
//! body) and returns a [`Verdict`]: [`Action`] `Allow` / `Warn` / `Block`, the anomaly score and
//! every [`Match`] (class, rule id, field location, score, whether an exclusion covered it).
//!
//! 1. **Extraction** splits the request into attacker-controlled values with a location:
//!    `path`, `query.<name>`, `header.<name>` (all headers except credentials and structural ones
//!    such as `Authorization`, `Accept*`, `Content-*`, `Sec-*`), `cookie.<name>`, and bodies:
//!    urlencoded (`body.<name>`), JSON (every string value and unusual key, `body.a.b[0]`),
//!    multipart (field values, file names as `body.<name>.filename`, text-like file contents;
//!    binary files skipped), CSV (`body.<column header>`), XML (attribute values and text) and
//!    anything else as text (`body`). Parameter names are inspected too.
//! 2. **Normalisation** undoes repeated URL encoding (`%XX`, `%uXXXX`), HTML entities, overlong
//!    UTF-8, full-width and look-alike Unicode, zero-width characters and NUL bytes, and folds
//!    case — bounded by [`Limits`].
//! 3. **Detectors** for SQL injection, XSS, path traversal and command injection are token /
//!    structure based rather than keyword lists, so "O'Brien", "AT&T", "Select Medical" and
//!    "please update the order; delete the old one" pass while `' or 1=1--` does not. Each rule
//!    has a paranoia level (1–4) and a CRS-style score (5 critical, 4 error, 3 warning, 2 notice).
//! 4. **Scoring**: matches covered by an [`Exclusion`] (route glob + optional field glob +
//!    classes) are reported but not counted; the rest are summed. `Block` when block-mode
//!    detectors reach [`AttackProtection::anomaly_threshold`], `Warn` when warn-mode ones push the
//!    total there.
//!
//! # Configuration
//!
//! The `attack_protection` section of the rules file deserialises into [`AttackProtection`]
//! (unknown fields rejected; [`AttackProtection::from_json`] reports the JSON path of errors):
//!
//! ```json
//! {
//!   "sqli":              { "mode": "block", "paranoia": 1 },
//!   "xss":               { "mode": "block", "paranoia": 1 },
//!   "path_traversal":    { "mode": "block", "paranoia": 1 },
//!   "command_injection": { "mode": "warn",  "paranoia": 2 },
//!   "anomaly_threshold": 5,
//!   "exclusions": [
//!     { "route": "/api/v1/campaigns*", "field": "body.html", "classes": ["xss"] }
//!   ],
//!   "limits": { "max_decode_passes": 3, "max_inspected_bytes": 262144,
//!               "max_fields": 1024, "max_depth": 32 }
//! }
//! ```
//!
//! `sensitivity` is accepted as an alias of `paranoia`. [`AttackProtection::default`] blocks all
//! four classes at paranoia 1 with threshold 5 and exempts campaign HTML (`body.html`,
//! `body.html_template` on `/api/v1/campaigns*`) from XSS only.
//!
//! ```
//! use leadgen_waf::{Action, AttackProtection, Engine, Request};
//!
//! let engine = Engine::new(AttackProtection::default()).unwrap();
//! let req = Request {
//!     method: "GET",
//!     path: "/api/v1/leads",
//!     query: Some("q=name%3AO%27Brien"),
//!     headers: &[("User-Agent", "curl/8.5")],
//!     content_type: None,
//!     body: b"",
//! };
//! assert_eq!(engine.inspect(&req).action, Action::Allow);
//! let attack = Request { query: Some("q=1%27%20or%20%271%27%3D%271"), ..req };
//! assert_eq!(engine.inspect(&attack).action, Action::Block);
//! ```
//!
//! The crate also holds the method allow-list the foundation enforces before any handler runs.

mod config;
mod detect;
mod engine;
pub mod eval;
mod extract;
pub mod normalize;

pub use config::{AttackProtection, Class, ConfigError, DetectorConfig, Exclusion, Limits, Mode};
pub use detect::rules::{RULES, RuleInfo, rule};
pub use engine::{Action, Engine, Match, Request, Verdict};

/// Methods LeadGen serves. Anything else (TRACE, CONNECT, WebDAV verbs…) is refused at the edge.
/// The XSS rule (at paranoia 1) that a single value of user data trips, if any: markup or script
/// that could reach a browser. For data that reaches LeadGen without passing the request
/// inspection (a streamed CSV import, cell by cell), where the rest of the attack classes do not
/// apply because every value is stored with bound parameters.
#[must_use]
pub fn markup(value: &str) -> Option<&'static str> {
    // Most cells (names, emails, titles, numbers) hold no byte that markup, script or an encoding
    // of them needs, nor a word the script rules look for: skip decoding them. Non-ASCII text
    // takes the full path, because full-width forms fold to `<` and `:`.
    const SYNTAX: &[u8] = b"<>:=(`[\\&%+@";
    const WORDS: [&str; 5] = ["document", "window", "location", "constructor", "innerhtml"];
    let plain = value.bytes().all(|b| b < 0x80 && !SYNTAX.contains(&b))
        && !WORDS.iter().any(|w| {
            value
                .as_bytes()
                .windows(w.len())
                .any(|x| x.eq_ignore_ascii_case(w.as_bytes()))
        });
    if plain {
        return None;
    }
    markup_unfiltered(value)
}

fn markup_unfiltered(value: &str) -> Option<&'static str> {
    let norm = normalize::normalize(value, Limits::default().max_decode_passes);
    let profile = detect::Profile::new(&norm.text);
    let input = detect::Input {
        text: &norm.text,
        had_null: norm.had_null,
        kind: extract::FieldKind::Value,
        profile: &profile,
    };
    let mut hits = detect::Hits::new(1);
    detect::xss::detect(&input, &mut hits);
    hits.list.iter().max_by_key(|h| h.score).map(|h| h.rule)
}

pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Whether `method` (as sent on the wire, case-sensitive per RFC 9110) is one LeadGen serves.
#[must_use]
pub fn method_allowed(method: &str) -> bool {
    ALLOWED_METHODS.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_names_the_rule_and_passes_business_text() {
        assert!(markup("<script>alert(1)</script>").is_some_and(|r| r.starts_with("xss.")));
        assert!(markup("Acme\"><img src=x onerror=alert(1)>").is_some());
        assert!(markup("%3Csvg%20onload%3Dalert(1)%3E").is_some());
        for b in [
            "Tom & Jerry's",
            "Head of R&D <EMEA>",
            "a < b > c",
            "Q3: 2 calls (follow-up)",
        ] {
            assert_eq!(markup(b), None, "{b}");
        }
    }

    /// Skipping plain cells changes no answer, over every XSS and benign line of the corpora.
    #[test]
    fn markup_prefilter_changes_nothing() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/waf");
        let mut n = 0;
        for file in [
            "libinjection-xss.txt",
            "libinjection-benign.txt",
            "libinjection-sqli.txt",
        ] {
            let text =
                std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            for line in text.lines() {
                assert_eq!(markup(line), markup_unfiltered(line), "{line:?}");
                n += 1;
            }
        }
        assert!(n > 9000, "{n} lines");
    }

    #[test]
    fn trace_and_connect_are_refused_and_common_methods_pass() {
        assert!(!method_allowed("TRACE"));
        assert!(!method_allowed("CONNECT"));
        assert!(!method_allowed("get"), "methods are case-sensitive");
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(method_allowed(m), "{m}");
        }
    }
}
