//! The inspection engine: extraction → normalisation → detectors → exclusions → anomaly score.

use crate::config::{AttackProtection, Class, ConfigError, Mode};
use crate::detect::{self, Hits, Input};
use crate::extract::{FieldKind, Sink, extract};
use crate::normalize::normalize;

/// What the WAF sees of a request. Borrowed, so the server builds it without copying.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method as sent.
    pub method: &'a str,
    /// Path without the query string, as received (still percent-encoded).
    pub path: &'a str,
    /// Raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    /// Request headers (name, value). `Authorization` and structural headers are ignored.
    pub headers: &'a [(&'a str, &'a str)],
    /// `Content-Type` of the body, if any.
    pub content_type: Option<&'a str>,
    /// Request body (possibly already truncated by the server's body limit).
    pub body: &'a [u8],
}

/// The engine's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing reached the threshold.
    Allow,
    /// The threshold was reached only by warn-mode detectors: log, don't block.
    Warn,
    /// Block-mode detectors reached the threshold.
    Block,
}

/// One rule that fired on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The attack class.
    pub class: Class,
    /// Stable rule id, e.g. `sqli.union_select`.
    pub rule: &'static str,
    /// Where: `query.q`, `body.notes`, `body.tags[0]`, `header.user-agent`, `cookie.sid`, `path`.
    pub location: String,
    /// Anomaly score contributed (0 contribution when `excluded`).
    pub score: u32,
    /// An exclusion covers this match; it does not count towards the score.
    pub excluded: bool,
}

/// Result of inspecting a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub action: Action,
    /// Sum of non-excluded match scores from detectors that are not off.
    pub score: u32,
    /// Every match, including excluded ones (for audit logs).
    pub matches: Vec<Match>,
    /// A limit (fields, bytes, depth) stopped inspection early; the rest was not inspected.
    pub truncated: bool,
}

/// A validated configuration ready to inspect requests. Cheap to share (`Arc<Engine>`); `inspect`
/// takes `&self` and allocates only per request.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: AttackProtection,
    clean_headers: std::sync::Arc<CleanHeaders>,
}

/// Header values that every detector of this engine found clean. A browser sends the same
/// `User-Agent` (long, full of `;` and `(`, so it takes the SQL and shell analyses) with every
/// request; once one copy is known clean, the next is looked up instead of analysed again. The
/// whole value is the key, not a hash of it, so no crafted value can borrow another's verdict;
/// only clean verdicts are kept (a match is always analysed, so its report is complete); the set
/// is bounded and emptied when full, so filling it costs an attacker's requests the normal
/// analysis and nothing more. A new engine (a reloaded rules file) starts empty.
#[derive(Debug, Default)]
struct CleanHeaders {
    values: std::sync::Mutex<std::collections::HashSet<Box<str>>>,
}

impl CleanHeaders {
    /// At most this many values are remembered, each at most this long.
    const ENTRIES: usize = 1024;
    const MAX_LEN: usize = 512;

    fn contains(&self, v: &str) -> bool {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(v)
    }

    fn insert(&self, v: &str) {
        let mut set = self
            .values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.len() >= Self::ENTRIES {
            set.clear();
        }
        set.insert(v.into());
    }
}

impl Engine {
    /// Validates `cfg` and builds the engine.
    pub fn new(cfg: AttackProtection) -> Result<Engine, ConfigError> {
        cfg.validate()?;
        Ok(Engine {
            cfg,
            clean_headers: std::sync::Arc::default(),
        })
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &AttackProtection {
        &self.cfg
    }

    /// Inspects one request. No I/O, no clock, no randomness: the verdict depends on the request
    /// and the configuration only (the clean-header memory changes how fast, never what).
    #[must_use]
    pub fn inspect(&self, req: &Request<'_>) -> Verdict {
        let cfg = &self.cfg;
        let mut sink = Sink::new(&cfg.limits);
        extract(req, &mut sink);

        // Exclusions whose route matches this request, resolved once.
        let exclusions: Vec<_> = cfg
            .exclusions
            .iter()
            .filter(|x| x.on_route(req.path))
            .collect();
        let enabled = Class::ALL.map(|c| {
            let d = cfg.detector(c);
            (c, d.paranoia, d.mode)
        });

        let mut matches: Vec<Match> = Vec::new();
        let mut block_score = 0u32;
        let mut score = 0u32;
        for field in &sink.fields {
            let cacheable =
                field.kind == FieldKind::Header && field.value.len() <= CleanHeaders::MAX_LEN;
            if cacheable && self.clean_headers.contains(&field.value) {
                continue;
            }
            let mut field_hit = false;
            let norm = normalize(&field.value, cfg.limits.max_decode_passes);
            if norm.text.is_empty() && !norm.had_null {
                continue;
            }
            let profile = detect::Profile::new(&norm.text);
            let input = Input {
                text: &norm.text,
                had_null: norm.had_null,
                kind: field.kind,
                profile: &profile,
            };
            for &(class, paranoia, mode) in &enabled {
                if mode == Mode::Off {
                    continue;
                }
                // The whole path is only meaningful for traversal; segments for the rest.
                let applies = match class {
                    Class::PathTraversal => field.kind != FieldKind::PathSegment,
                    _ => field.kind != FieldKind::Path,
                };
                if !applies {
                    continue;
                }
                let mut hits = Hits::new(paranoia);
                match class {
                    Class::Sqli => detect::sqli::detect(&input, &mut hits),
                    Class::Xss => detect::xss::detect(&input, &mut hits),
                    Class::PathTraversal => detect::traversal::detect(&input, &mut hits),
                    Class::CommandInjection => detect::cmdi::detect(&input, &mut hits),
                }
                if hits.list.is_empty() {
                    continue;
                }
                field_hit = true;
                let location = sink.location(field);
                for h in hits.list {
                    let excluded = exclusions.iter().any(|x| x.covers(class, h.rule, location));
                    // The same rule on the same location counts once (a parameter name and its
                    // value share a location).
                    if matches
                        .iter()
                        .any(|m| m.rule == h.rule && m.class == class && m.location == location)
                    {
                        continue;
                    }
                    if !excluded {
                        score += h.score;
                        if mode == Mode::Block {
                            block_score += h.score;
                        }
                    }
                    matches.push(Match {
                        class,
                        rule: h.rule,
                        location: location.to_owned(),
                        score: h.score,
                        excluded,
                    });
                }
            }
            if cacheable && !field_hit {
                self.clean_headers.insert(&field.value);
            }
        }
        let action = if block_score >= cfg.anomaly_threshold {
            Action::Block
        } else if score >= cfg.anomaly_threshold {
            Action::Warn
        } else {
            Action::Allow
        };
        Verdict {
            action,
            score,
            matches,
            truncated: sink.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorConfig, Exclusion};

    fn engine() -> Engine {
        Engine::new(AttackProtection::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn json(path: &str, body: &str) -> Verdict {
        engine().inspect(&Request {
            method: "POST",
            path,
            query: None,
            headers: &[(
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            )],
            content_type: Some("application/json"),
            body: body.as_bytes(),
        })
    }

    fn query(q: &str) -> Verdict {
        engine().inspect(&Request {
            method: "GET",
            path: "/api/v1/leads",
            query: Some(q),
            headers: &[],
            content_type: None,
            body: b"",
        })
    }

    /// A header value remembered as clean changes no verdict: the same engine still blocks an
    /// attack in the same header, however often, and a value that differs by one byte.
    #[test]
    fn remembered_clean_headers_change_no_verdict() {
        let e = engine();
        let with_ua = |ua: &str| {
            let headers = [("User-Agent", ua)];
            e.inspect(&Request {
                method: "GET",
                path: "/api/v1/leads",
                query: None,
                headers: &headers,
                content_type: None,
                body: b"",
            })
            .action
        };
        let browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let attack = "Mozilla/5.0 (X11) () { :; }; /bin/bash -c 'cat /etc/passwd'";
        for _ in 0..3 {
            assert_eq!(with_ua(browser), Action::Allow);
            assert_eq!(with_ua(attack), Action::Block);
            assert_eq!(with_ua(&format!("{browser}' or 1=1--")), Action::Block);
        }
        // More distinct clean values than the memory holds, then the attack again.
        for i in 0..(CleanHeaders::ENTRIES + 10) {
            assert_eq!(with_ua(&format!("{browser} Build/{i}")), Action::Allow);
        }
        assert_eq!(with_ua(attack), Action::Block);
    }

    #[test]
    fn named_hard_cases_pass_the_default_config() {
        for text in [
            "O'Brien",
            "AT&T",
            "R&D",
            "Q&A",
            "Select Medical",
            "Drop Zone Inc",
            "Union Pacific",
            "1=1 means identical",
            "drop me a line; select the best option",
            "please update the order; delete the old one",
            "Their team wants to select from a union of vendors and drop the slowest one",
            "asked: where 1=1 in their BI tool? (joke about filters)",
            "Said their script tag manager blocks onload popups",
            "Wants <b>bold</b> formatting in notes",
            "Ran ../setup.sh last week, still failing on their side",
            "Met at SaaStr; follow up re: pricing -- wants 10% off?",
            "Budget >= $50k; timeline < 3 months",
            "Python; SQL; Java & Ruby",
            "Time & Attendance; more later",
            "Interested in the 'Enterprise' plan (annual)",
            "C# Developer",
            "Toys\"R\"Us",
        ] {
            let body = serde_json::json!({ "last_name": "x", "notes": text }).to_string();
            let v = json("/api/v1/leads", &body);
            assert_eq!(v.action, Action::Allow, "{text:?}: {:?}", v.matches);
            let q = format!(
                "q={}",
                text.replace('%', "%25")
                    .replace('&', "%26")
                    .replace(' ', "+")
            );
            let v = query(&q);
            assert_eq!(v.action, Action::Allow, "query {text:?}: {:?}", v.matches);
        }
    }

    #[test]
    fn attacks_block_with_a_location() {
        let v = query("q=x%27%20or%201%3D1--&limit=50");
        assert_eq!(v.action, Action::Block);
        assert!(
            v.matches
                .iter()
                .any(|m| m.class == Class::Sqli && m.location == "query.q")
        );

        let v = json(
            "/api/v1/leads",
            r#"{"notes": ["ok", {"deep": "<script>alert(1)</script>"}]}"#,
        );
        assert_eq!(v.action, Action::Block);
        assert!(v.matches.iter().any(|m| m.location == "body.notes[1].deep"));

        let v = query("file=..%252f..%252f..%252fetc%252fpasswd");
        assert_eq!(v.action, Action::Block);
        assert!(v.matches.iter().any(|m| m.class == Class::PathTraversal));

        let v = query("host=127.0.0.1%3Bcat%20/etc/passwd");
        assert!(v.matches.iter().any(|m| m.class == Class::CommandInjection));
    }

    #[test]
    fn campaign_html_is_excluded_only_where_configured() {
        let html = r#"{"name": "Q4", "html": "<p>Hi {{first_name}}</p><script>track()</script>"}"#;
        let v = json("/api/v1/campaigns", html);
        assert_eq!(v.action, Action::Allow, "{:?}", v.matches);
        assert!(
            v.matches
                .iter()
                .any(|m| m.excluded && m.location == "body.html")
        );
        // The same HTML in a lead note, or SQL injection in the template, still blocks.
        assert_eq!(json("/api/v1/leads", html).action, Action::Block);
        let sqli = r#"{"html": "<p>x</p>", "name": "x' union select password from users--"}"#;
        assert_eq!(json("/api/v1/campaigns", sqli).action, Action::Block);
    }

    #[test]
    fn warn_mode_and_off_mode() {
        let cfg = AttackProtection {
            sqli: DetectorConfig {
                mode: Mode::Warn,
                paranoia: 1,
            },
            xss: DetectorConfig {
                mode: Mode::Off,
                paranoia: 1,
            },
            exclusions: vec![Exclusion {
                description: None,
                route: "/x*".into(),
                routes: vec![],
                field: None,
                fields: vec![],
                classes: vec![],
                rules: vec![],
            }],
            ..AttackProtection::default()
        };
        let e = Engine::new(cfg).unwrap_or_else(|e| panic!("{e}"));
        let req = |q| Request {
            method: "GET",
            path: "/api/v1/leads",
            query: Some(q),
            headers: &[],
            content_type: None,
            body: b"",
        };
        assert_eq!(
            e.inspect(&req("q=1%20union%20select%201,2")).action,
            Action::Warn
        );
        assert_eq!(
            e.inspect(&req("q=%3Cscript%3Ealert(1)%3C/script%3E"))
                .action,
            Action::Allow
        );
        assert_eq!(
            e.inspect(&req("q=..%2f..%2fetc%2fpasswd")).action,
            Action::Block
        );
    }

    #[test]
    fn limits_mark_truncation() {
        let cfg = AttackProtection {
            limits: crate::Limits {
                max_inspected_bytes: 8,
                ..crate::Limits::default()
            },
            ..AttackProtection::default()
        };
        let e = Engine::new(cfg).unwrap_or_else(|e| panic!("{e}"));
        let v = e.inspect(&Request {
            method: "GET",
            path: "/a",
            query: Some("q=hello+world+this+is+long"),
            headers: &[],
            content_type: None,
            body: b"",
        });
        assert!(v.truncated);
    }
}
