//! Measuring the engine on evaluation corpora in the format of the shared WAF data set
//! (`crs-attacks.jsonl`, `libinjection-{sqli,xss,benign}.txt`, `benign-b2b.jsonl`).
//!
//! This module owns the one way corpus lines become [`Request`]s, so the corpus test and the
//! `waf-eval` binary measure the same thing:
//!
//! - a `crs-attacks.jsonl` request with a body and no `Content-Type` header is form data
//!   (`application/x-www-form-urlencoded`), and gets a `Content-Length`;
//! - each non-comment line of a `libinjection-*.txt` file is one URL-encoded value of the query
//!   parameter `q` on `GET /api/v1/leads` (a raw `&` in it is data, so it is escaped);
//! - `benign-b2b.jsonl` lines carry their own method, URI, content type and body, sent with a
//!   browser's `User-Agent`, `Referer` and `Cookie`.
//!
//! A request counts as detected / flagged when the verdict is not [`Action::Allow`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::{Action, Engine, Request, Verdict};

/// The corpus files, in the order they are loaded.
pub const CORPUS_FILES: [&str; 5] = [
    "crs-attacks.jsonl",
    "libinjection-sqli.txt",
    "libinjection-xss.txt",
    "libinjection-benign.txt",
    "benign-b2b.jsonl",
];

const BROWSER_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Why a corpus could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A corpus file is missing or unreadable.
    #[error("corpus file {path} is required but unreadable: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON line does not parse.
    #[error("{path}:{line}: not a JSON object: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        reason: String,
    },
}

/// An owned request built from a corpus line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Headers, including `Content-Type` when the line carried one.
    pub headers: Vec<(String, String)>,
    /// Body content type.
    pub content_type: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl OwnedRequest {
    fn from_uri(method: &str, uri: &str) -> OwnedRequest {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (uri.to_owned(), None),
        };
        OwnedRequest {
            method: method.to_owned(),
            path,
            query,
            headers: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }

    /// Runs the engine on this request.
    #[must_use]
    pub fn inspect(&self, engine: &Engine) -> Verdict {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        engine.inspect(&Request {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &headers,
            content_type: self.content_type.as_deref(),
            body: &self.body,
        })
    }
}

/// A `crs-attacks.jsonl` line.
#[derive(Debug, Clone)]
pub struct CrsCase {
    /// Test id.
    pub id: String,
    /// Attack class (`sqli`, `xss`, `rce`…).
    pub class: String,
    /// The request.
    pub request: OwnedRequest,
}

/// A `libinjection-*.txt` line.
#[derive(Debug, Clone)]
pub struct LineCase {
    /// The line as written (URL-encoded).
    pub line: String,
    /// The request carrying it.
    pub request: OwnedRequest,
}

/// A `benign-b2b.jsonl` line.
#[derive(Debug, Clone)]
pub struct B2bCase {
    /// Line id.
    pub id: String,
    /// Reads like an attack but is not.
    pub hard: bool,
    /// The request.
    pub request: OwnedRequest,
}

/// A loaded corpus directory.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// CRS attack requests.
    pub crs: Vec<CrsCase>,
    /// libinjection SQL injection strings.
    pub li_sqli: Vec<LineCase>,
    /// libinjection XSS strings.
    pub li_xss: Vec<LineCase>,
    /// libinjection benign strings.
    pub li_benign: Vec<LineCase>,
    /// Benign LeadGen traffic.
    pub b2b: Vec<B2bCase>,
}

fn read(dir: &Path, name: &str) -> Result<(PathBuf, String), EvalError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok((path, s)),
        // A directory may hold only some of the files (a validation set of attacks only): an
        // absent file is an empty one. Anything else (a permission problem) is an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, String::new())),
        Err(source) => Err(EvalError::Read { path, source }),
    }
}

fn json_lines(dir: &Path, name: &str) -> Result<Vec<serde_json::Value>, EvalError> {
    let (path, text) = read(dir, name)?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| EvalError::Json {
            path: path.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        if !v.is_object() {
            return Err(EvalError::Json {
                path: path.clone(),
                line: i + 1,
                reason: "not an object".to_owned(),
            });
        }
        out.push(v);
    }
    Ok(out)
}

fn str_field<'a>(v: &'a serde_json::Value, k: &str, default: &'a str) -> &'a str {
    v.get(k)
        .and_then(serde_json::Value::as_str)
        .unwrap_or(default)
}

fn crs_case(v: &serde_json::Value) -> CrsCase {
    let mut r = OwnedRequest::from_uri(str_field(v, "method", "GET"), str_field(v, "uri", "/"));
    if let Some(h) = v.get("headers").and_then(serde_json::Value::as_object) {
        for (k, val) in h {
            let val = val.as_str().unwrap_or("").to_owned();
            if k.eq_ignore_ascii_case("content-type") {
                r.content_type = Some(val.clone());
            }
            r.headers.push((k.clone(), val));
        }
    }
    if let Some(b) = v.get("body").and_then(serde_json::Value::as_str) {
        r.body = b.as_bytes().to_vec();
        // A body without Content-Type is form data (as the CRS runner sends it).
        if r.content_type.is_none() && !r.body.is_empty() {
            let form = "application/x-www-form-urlencoded";
            r.content_type = Some(form.to_owned());
            r.headers.push(("Content-Type".to_owned(), form.to_owned()));
        }
        r.headers
            .push(("Content-Length".to_owned(), r.body.len().to_string()));
    }
    CrsCase {
        id: str_field(v, "id", "").to_owned(),
        class: str_field(v, "class", "").to_owned(),
        request: r,
    }
}

/// The request a libinjection line is sent as: `GET /api/v1/leads?q=<line>`, a raw `&` escaped so
/// the line stays one parameter value.
#[must_use]
pub fn line_request(line: &str) -> OwnedRequest {
    let mut r = OwnedRequest::from_uri("GET", "/api/v1/leads");
    r.query = Some(format!("q={}", line.replace('&', "%26")));
    r.headers
        .push(("User-Agent".to_owned(), BROWSER_UA.to_owned()));
    r
}

fn line_cases(dir: &Path, name: &str) -> Result<Vec<LineCase>, EvalError> {
    let (_, text) = read(dir, name)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| LineCase {
            line: l.to_owned(),
            request: line_request(l),
        })
        .collect())
}

fn b2b_case(v: &serde_json::Value) -> B2bCase {
    let mut r = OwnedRequest::from_uri(str_field(v, "method", "GET"), str_field(v, "uri", "/"));
    r.content_type = v
        .get("content_type")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    if let Some(b) = v.get("body").and_then(serde_json::Value::as_str) {
        r.body = b.as_bytes().to_vec();
    }
    r.headers
        .push(("User-Agent".to_owned(), BROWSER_UA.to_owned()));
    r.headers.push((
        "Referer".to_owned(),
        "https://app.leadgen.example/leads?view=all&sort=-created".to_owned(),
    ));
    r.headers.push((
        "Cookie".to_owned(),
        "lg_session=abc123; theme=dark".to_owned(),
    ));
    B2bCase {
        id: str_field(v, "id", "").to_owned(),
        hard: v
            .get("hard")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        request: r,
    }
}

impl Corpus {
    /// Loads the corpus files of `dir`. A file may be absent or empty (its rows are then left
    /// out of the report), but a directory with none of them is an error naming the first.
    pub fn load(dir: &Path) -> Result<Corpus, EvalError> {
        if !CORPUS_FILES.iter().any(|f| dir.join(f).is_file()) {
            return Err(EvalError::Read {
                path: dir.join(CORPUS_FILES[0]),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no corpus file in this directory",
                ),
            });
        }
        Ok(Corpus {
            crs: json_lines(dir, "crs-attacks.jsonl")?
                .iter()
                .map(crs_case)
                .collect(),
            li_sqli: line_cases(dir, "libinjection-sqli.txt")?,
            li_xss: line_cases(dir, "libinjection-xss.txt")?,
            li_benign: line_cases(dir, "libinjection-benign.txt")?,
            b2b: json_lines(dir, "benign-b2b.jsonl")?
                .iter()
                .map(b2b_case)
                .collect(),
        })
    }

    /// Runs `engine` over every request and tallies the results.
    #[must_use]
    pub fn evaluate(&self, engine: &Engine) -> Report {
        let mut times: Vec<f64> = Vec::new();
        let mut run = |r: &OwnedRequest| -> bool {
            let t = Instant::now();
            let v = r.inspect(engine);
            times.push(t.elapsed().as_secs_f64() * 1e6);
            v.action != Action::Allow
        };
        let mut crs: BTreeMap<String, Tally> = BTreeMap::new();
        for c in &self.crs {
            let hit = run(&c.request);
            crs.entry(c.class.clone()).or_default().add(hit);
        }
        let mut lines = |set: &[LineCase]| {
            let mut t = Tally::default();
            for c in set {
                t.add(run(&c.request));
            }
            t
        };
        let li_sqli = lines(&self.li_sqli);
        let li_xss = lines(&self.li_xss);
        let li_benign = lines(&self.li_benign);
        let (mut normal, mut hard) = (Tally::default(), Tally::default());
        let attacks_and_lines =
            self.crs.len() + self.li_sqli.len() + self.li_xss.len() + self.li_benign.len();
        for c in &self.b2b {
            let hit = run(&c.request);
            if c.hard {
                hard.add(hit);
            } else {
                normal.add(hit);
            }
        }
        let mut benign = times.split_off(attacks_and_lines);
        benign.sort_by(f64::total_cmp);
        times.extend_from_slice(&benign);
        times.sort_by(f64::total_cmp);
        Report {
            crs,
            li_sqli,
            li_xss,
            li_benign,
            b2b_normal: normal,
            b2b_hard: hard,
            timing_us: Timing {
                p50: percentile(&times, 50.0),
                p90: percentile(&times, 90.0),
                p99: percentile(&times, 99.0),
            },
            benign_timing_us: Timing {
                p50: percentile(&benign, 50.0),
                p90: percentile(&benign, 90.0),
                p99: percentile(&benign, 99.0),
            },
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Hits out of total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests detected / flagged.
    pub hits: usize,
    /// Requests inspected.
    pub total: usize,
}

impl Tally {
    fn add(&mut self, hit: bool) {
        self.total += 1;
        self.hits += usize::from(hit);
    }

    /// Percentage of hits (0 when empty).
    #[must_use]
    pub fn pct(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.hits as f64 / self.total as f64
        }
    }
}

/// Per-request inspection time, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One request the engine got wrong: an attack it allowed, or a benign request it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    /// `crs sqli`, `libinjection xss`, `benign-b2b`…
    pub set: String,
    /// The line's id (or the line itself for the line files).
    pub id: String,
    /// What was sent: the URI and a prefix of the body.
    pub request: String,
    /// The rules that fired, with their location (empty for a miss).
    pub rules: Vec<String>,
}

impl Corpus {
    /// Every request the engine gets wrong, for tuning on a development set (never on a
    /// validation set): attacks allowed and benign requests flagged.
    #[must_use]
    pub fn mistakes(&self, engine: &Engine) -> Vec<Mistake> {
        let describe = |r: &OwnedRequest| {
            let body: String = String::from_utf8_lossy(&r.body).chars().take(300).collect();
            match &r.query {
                Some(q) => format!("{} {}?{q} {body}", r.method, r.path),
                None => format!("{} {} {body}", r.method, r.path),
            }
        };
        let rules = |v: &Verdict| {
            v.matches
                .iter()
                .filter(|m| !m.excluded)
                .map(|m| format!("{}@{}", m.rule, m.location))
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        for c in &self.crs {
            let v = c.request.inspect(engine);
            if v.action == Action::Allow {
                out.push(Mistake {
                    set: format!("crs {}", c.class),
                    id: c.id.clone(),
                    request: describe(&c.request),
                    rules: rules(&v),
                });
            }
        }
        for (set, cases, attack) in [
            ("libinjection sqli", &self.li_sqli, true),
            ("libinjection xss", &self.li_xss, true),
            ("libinjection benign", &self.li_benign, false),
        ] {
            for c in cases {
                let v = c.request.inspect(engine);
                if (v.action == Action::Allow) == attack {
                    out.push(Mistake {
                        set: set.to_owned(),
                        id: c.line.clone(),
                        request: describe(&c.request),
                        rules: rules(&v),
                    });
                }
            }
        }
        for c in &self.b2b {
            let v = c.request.inspect(engine);
            if v.action != Action::Allow {
                out.push(Mistake {
                    set: "benign-b2b".to_owned(),
                    id: c.id.clone(),
                    request: describe(&c.request),
                    rules: rules(&v),
                });
            }
        }
        out
    }
}

/// What [`Corpus::evaluate`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// CRS detection per `class` value.
    pub crs: BTreeMap<String, Tally>,
    /// libinjection SQL injection detection.
    pub li_sqli: Tally,
    /// libinjection XSS detection.
    pub li_xss: Tally,
    /// libinjection benign lines flagged.
    pub li_benign: Tally,
    /// Benign LeadGen requests (not hard) flagged.
    pub b2b_normal: Tally,
    /// Hard benign LeadGen requests flagged.
    pub b2b_hard: Tally,
    /// Inspection time per request, every request of the corpus.
    pub timing_us: Timing,
    /// Inspection time per benign LeadGen request (`benign-b2b.jsonl`) only.
    pub benign_timing_us: Timing,
}

impl Report {
    /// The report as one JSON object: `detection` (per CRS class, `libinjection_sqli`,
    /// `libinjection_xss`: `detected`/`total`), `false_positives` (`libinjection_benign`,
    /// `benign_b2b_normal`, `benign_b2b_hard`: `flagged`/`total`), `timing_us` (`p50`, `p90`,
    /// `p99`, every request) and `benign_timing_us` (the same over `benign-b2b.jsonl` only).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let det = |t: &Tally| serde_json::json!({ "detected": t.hits, "total": t.total, "pct": (t.pct() * 10.0).round() / 10.0 });
        let fp = |t: &Tally| serde_json::json!({ "flagged": t.hits, "total": t.total });
        let mut detection = serde_json::Map::new();
        for (class, t) in &self.crs {
            detection.insert(class.clone(), det(t));
        }
        detection.insert("libinjection_sqli".to_owned(), det(&self.li_sqli));
        detection.insert("libinjection_xss".to_owned(), det(&self.li_xss));
        let round = |x: f64| (x * 10.0).round() / 10.0;
        serde_json::json!({
            "detection": detection,
            "false_positives": {
                "libinjection_benign": fp(&self.li_benign),
                "benign_b2b_normal": fp(&self.b2b_normal),
                "benign_b2b_hard": fp(&self.b2b_hard),
            },
            "timing_us": {
                "p50": round(self.timing_us.p50),
                "p90": round(self.timing_us.p90),
                "p99": round(self.timing_us.p99),
            },
            "benign_timing_us": {
                "p50": round(self.benign_timing_us.p50),
                "p90": round(self.benign_timing_us.p90),
                "p99": round(self.benign_timing_us.p99),
            },
        })
    }

    /// The report as a human-readable table.
    #[must_use]
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let row = |s: &mut String, name: &str, t: &Tally| {
            // A file the directory does not have (or an empty one) has no row.
            if t.total == 0 {
                return;
            }
            let _ = writeln!(
                s,
                "  {name:<28} {:>6} / {:<6} {:>6.1}%",
                t.hits,
                t.total,
                t.pct()
            );
        };
        s.push_str("detection (requests not allowed)\n");
        for (class, t) in &self.crs {
            row(&mut s, &format!("crs {class}"), t);
        }
        row(&mut s, "libinjection sqli", &self.li_sqli);
        row(&mut s, "libinjection xss", &self.li_xss);
        s.push_str("false positives (requests not allowed)\n");
        row(&mut s, "libinjection benign", &self.li_benign);
        row(&mut s, "benign-b2b normal", &self.b2b_normal);
        row(&mut s, "benign-b2b hard", &self.b2b_hard);
        let _ = writeln!(
            s,
            "inspection time per request (µs)\n  p50 {:.1}   p90 {:.1}   p99 {:.1}",
            self.timing_us.p50, self.timing_us.p90, self.timing_us.p99
        );
        if self.b2b_normal.total + self.b2b_hard.total > 0 {
            let _ = writeln!(
                s,
                "  benign-b2b only: p50 {:.1}   p90 {:.1}   p99 {:.1}",
                self.benign_timing_us.p50, self.benign_timing_us.p90, self.benign_timing_us.p99
            );
        }
        s
    }
}

/// The `attack_protection` object of a full rules file (`waf-rules.json`), as JSON text for
/// [`crate::AttackProtection::from_json`].
pub fn attack_protection_of(rules_file: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(rules_file).map_err(|e| format!("rules file is not JSON: {e}"))?;
    match v.get("attack_protection") {
        Some(ap) if ap.is_object() => Ok(ap.to_string()),
        Some(_) => Err("rules file: attack_protection is not an object".to_owned()),
        None => Err("rules file has no attack_protection object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 90.0), 7.0);
    }

    #[test]
    fn libinjection_lines_stay_one_parameter() {
        let r = line_request("1%27 or a&b");
        assert_eq!(r.query.as_deref(), Some("q=1%27 or a%26b"));
    }
}
