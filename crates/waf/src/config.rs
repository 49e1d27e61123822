//! The `attack_protection` section of the WAF rules file: which detectors run, how strictly, when a
//! request is refused, and where legitimately attack-shaped content (campaign HTML) is exempt.
//!
//! Parsing is strict (`deny_unknown_fields`) so a typo in the rules file is a startup error that
//! names the JSON path, not a silently disabled detector.

use serde::Deserialize;

/// The attack class a detector covers. Used in matches and in exclusions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting (HTML / JavaScript injection).
    Xss,
    /// Path traversal and access to well-known sensitive files.
    PathTraversal,
    /// OS command injection (including shell obfuscation and mail-protocol injection).
    CommandInjection,
}

impl Class {
    /// All classes, in the order detectors run.
    pub const ALL: [Class; 4] = [
        Class::Sqli,
        Class::Xss,
        Class::PathTraversal,
        Class::CommandInjection,
    ];

    /// The name used in the rules file and in logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::PathTraversal => "path_traversal",
            Class::CommandInjection => "command_injection",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a detector does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The detector does not run.
    Off,
    /// Matches are reported (and logged by the server) but never block.
    Warn,
    /// Matches count towards the anomaly score that blocks.
    #[default]
    Block,
}

/// One detector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// off / warn / block.
    #[serde(default)]
    pub mode: Mode,
    /// Paranoia level 1–4: higher levels enable broader rules that catch more obfuscated attacks
    /// and also flag more unusual-but-benign input. 1 is safe for free-text business data.
    #[serde(default = "default_paranoia", alias = "sensitivity")]
    pub paranoia: u8,
}

fn default_paranoia() -> u8 {
    1
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            mode: Mode::Block,
            paranoia: default_paranoia(),
        }
    }
}

/// Exempts matches of some classes on a route (and optionally one field) from scoring. Excluded
/// matches are still reported (`Match::excluded`) so an audit can see what the exemption hid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Why the exemption exists, for people reading the file.
    #[serde(default)]
    pub description: Option<String>,
    /// Request path glob; `*` matches any run of characters (including `/`), e.g.
    /// `/api/v1/campaigns*`.
    #[serde(default)]
    pub route: String,
    /// More path globs for the same exemption (a policy shared by several routes); a request
    /// matches when its path matches `route` or any of these.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Field location glob as reported in `Match::location`, e.g. `body.html`, `query.q`,
    /// `body.blocks[*].html`. Absent: every field on the route.
    #[serde(default)]
    pub field: Option<String>,
    /// More field globs for the same exemption; a match is covered when its location matches
    /// `field` or any of these (with neither, every field on the route).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Classes exempted. Empty: all classes.
    #[serde(default)]
    pub classes: Vec<Class>,
    /// Rules exempted, by id or glob (`path.sensitive_file`, `sqli.select_*`); every entry must
    /// name at least one rule of `docs/waf.md`. Empty: every rule of the classes. This is CRS's
    /// "remove rule for target": a field that is data on one route stops being judged by the
    /// rules that read its prose as an attack, and keeps every other rule.
    #[serde(default)]
    pub rules: Vec<String>,
}

impl Exclusion {
    /// Whether the exemption applies on `path`.
    #[must_use]
    pub fn on_route(&self, path: &str) -> bool {
        (!self.route.is_empty() && glob_match(&self.route, path))
            || self.routes.iter().any(|r| glob_match(r, path))
    }

    /// Whether this exclusion covers rule `rule` of `class` at `location` (its route already
    /// matched).
    #[must_use]
    pub fn covers(&self, class: Class, rule: &str, location: &str) -> bool {
        (self.classes.is_empty() || self.classes.contains(&class))
            && (self.rules.is_empty() || self.rules.iter().any(|r| glob_match(r, rule)))
            && ((self.field.is_none() && self.fields.is_empty())
                || self
                    .field
                    .as_deref()
                    .is_some_and(|f| glob_match(f, location))
                || self.fields.iter().any(|f| glob_match(f, location)))
    }
}

/// Bounds on the work one request can cause. Exceeding them never panics or errors: inspection
/// stops and `Verdict::truncated` says so, letting the server decide (LeadGen's body-size limit
/// already refuses oversized bodies before the WAF sees them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// How many rounds of URL / entity decoding to apply to a value (double and triple encoding).
    #[serde(default = "default_decode_passes")]
    pub max_decode_passes: u8,
    /// Total bytes of field content inspected per request; fields beyond are skipped and a field
    /// that straddles the limit is inspected up to it.
    #[serde(default = "default_inspected_bytes")]
    pub max_inspected_bytes: usize,
    /// Maximum number of fields (parameters, JSON strings, headers…) inspected per request.
    #[serde(default = "default_max_fields")]
    pub max_fields: usize,
    /// Maximum JSON nesting depth descended into.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
}

fn default_decode_passes() -> u8 {
    3
}
fn default_inspected_bytes() -> usize {
    256 * 1024
}
fn default_max_fields() -> usize {
    1024
}
fn default_max_depth() -> usize {
    32
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decode_passes: default_decode_passes(),
            max_inspected_bytes: default_inspected_bytes(),
            max_fields: default_max_fields(),
            max_depth: default_max_depth(),
        }
    }
}

/// The `attack_protection` section of the rules file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackProtection {
    /// SQL injection detector.
    #[serde(default)]
    pub sqli: DetectorConfig,
    /// Cross-site scripting detector.
    #[serde(default)]
    pub xss: DetectorConfig,
    /// Path traversal / sensitive file detector.
    #[serde(default)]
    pub path_traversal: DetectorConfig,
    /// OS command injection detector.
    #[serde(default)]
    pub command_injection: DetectorConfig,
    /// Paranoia level for every detector, 1 to 3, as CRS's `blocking_paranoia_level`: 1 (the
    /// default) runs the rules precise enough for free business text; 2 adds rules that catch
    /// more obfuscation and flag unusual text; 3 adds broad keyword rules for high-risk
    /// deployments that can afford exclusions. A detector's own `paranoia` raises it further.
    #[serde(default = "default_paranoia")]
    pub paranoia: u8,
    /// A request is blocked when the summed score of its non-excluded matches from block-mode
    /// detectors reaches this. One critical match scores 5.
    #[serde(default = "default_threshold")]
    pub anomaly_threshold: u32,
    /// Route / field exemptions.
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
    /// Work bounds.
    #[serde(default)]
    pub limits: Limits,
}

fn default_threshold() -> u32 {
    5
}

impl Default for AttackProtection {
    /// All four detectors blocking at paranoia 1, threshold 5 (one critical match), and campaign
    /// templates allowed to carry HTML: `POST/PATCH /api/v1/campaigns…` field `body.html` (the name
    /// LeadGen's campaign API uses) and `body.html_template`.
    fn default() -> Self {
        let campaign_html = |field: &str| Exclusion {
            description: None,
            route: "/api/v1/campaigns*".to_owned(),
            field: Some(field.to_owned()),
            routes: Vec::new(),
            fields: Vec::new(),
            classes: vec![Class::Xss],
            rules: Vec::new(),
        };
        AttackProtection {
            paranoia: default_paranoia(),
            sqli: DetectorConfig::default(),
            xss: DetectorConfig::default(),
            path_traversal: DetectorConfig::default(),
            command_injection: DetectorConfig::default(),
            anomaly_threshold: default_threshold(),
            exclusions: vec![
                campaign_html("body.html"),
                campaign_html("body.html_template"),
            ],
            limits: Limits::default(),
        }
    }
}

/// Why a configuration was refused: the JSON path of the offending value and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attack_protection{path}: {reason}")]
pub struct ConfigError {
    /// JSON path below `attack_protection`, e.g. `.sqli.paranoia` or `.exclusions[2].route`.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl AttackProtection {
    /// Parses the `attack_protection` JSON object and validates it. Errors name the JSON path.
    pub fn from_json(json: &str) -> Result<AttackProtection, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let cfg: AttackProtection =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError {
                path: match e.path().to_string().as_str() {
                    "." => String::new(),
                    p => format!(".{}", p.trim_start_matches('.')),
                },
                reason: e.inner().to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks value ranges serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |path: String, reason: &str| ConfigError {
            path,
            reason: reason.to_owned(),
        };
        for (name, d) in [
            ("sqli", &self.sqli),
            ("xss", &self.xss),
            ("path_traversal", &self.path_traversal),
            ("command_injection", &self.command_injection),
        ] {
            if !(1..=4).contains(&d.paranoia) {
                return Err(err(
                    format!(".{name}.paranoia"),
                    "paranoia must be between 1 and 4",
                ));
            }
        }
        if !(1..=3).contains(&self.paranoia) {
            return Err(err(".paranoia".into(), "paranoia must be 1, 2 or 3"));
        }
        if self.anomaly_threshold == 0 {
            return Err(err(
                ".anomaly_threshold".into(),
                "must be at least 1 (0 would block every request)",
            ));
        }
        for (i, x) in self.exclusions.iter().enumerate() {
            if x.route.is_empty() && x.routes.is_empty() {
                return Err(err(
                    format!(".exclusions[{i}].route"),
                    "an exclusion needs route (or routes)",
                ));
            }
            if !x.route.is_empty() && !x.route.starts_with('/') {
                return Err(err(
                    format!(".exclusions[{i}].route"),
                    "must be a path glob starting with '/'",
                ));
            }
            if let Some(k) = x.routes.iter().position(|r| !r.starts_with('/')) {
                return Err(err(
                    format!(".exclusions[{i}].routes[{k}]"),
                    "must be a path glob starting with '/'",
                ));
            }
            for (k, r) in x.rules.iter().enumerate() {
                let known = crate::detect::rules::RULES.iter().any(|rule| {
                    glob_match(r, rule.id)
                        && (x.classes.is_empty() || x.classes.contains(&rule.class))
                });
                if !known {
                    return Err(err(
                        format!(".exclusions[{i}].rules[{k}]"),
                        "names no rule of these classes (the rules are listed in docs/waf.md)",
                    ));
                }
            }
            let known = ["query", "body", "header", "cookie", "path"];
            let fields = x
                .field
                .iter()
                .map(|f| (format!(".exclusions[{i}].field"), f))
                .chain(
                    x.fields
                        .iter()
                        .enumerate()
                        .map(|(k, f)| (format!(".exclusions[{i}].fields[{k}]"), f)),
                );
            for (path, f) in fields {
                let root = f.split(['.', '[']).next().unwrap_or("");
                if !known.contains(&root) && f != "*" {
                    return Err(err(
                        path,
                        "must start with query., body., header., cookie. or be path",
                    ));
                }
            }
        }
        let l = &self.limits;
        if l.max_decode_passes == 0 || l.max_decode_passes > 8 {
            return Err(err(
                ".limits.max_decode_passes".into(),
                "must be between 1 and 8",
            ));
        }
        if l.max_inspected_bytes == 0 || l.max_fields == 0 || l.max_depth == 0 {
            return Err(err(".limits".into(), "limits must be positive"));
        }
        Ok(())
    }

    /// The detector of `class`, at the paranoia in force: its own, raised to the global level.
    pub(crate) fn detector(&self, class: Class) -> DetectorConfig {
        let d = match class {
            Class::Sqli => self.sqli,
            Class::Xss => self.xss,
            Class::PathTraversal => self.path_traversal,
            Class::CommandInjection => self.command_injection,
        };
        DetectorConfig {
            paranoia: d.paranoia.max(self.paranoia),
            ..d
        }
    }
}

/// Glob match where `*` matches any run of bytes (including none). Iterative with single
/// backtrack point, so it is linear-ish and cannot blow up on hostile patterns.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("/api/v1/campaigns*", "/api/v1/campaigns"));
        assert!(glob_match(
            "/api/v1/campaigns*",
            "/api/v1/campaigns/12/send"
        ));
        assert!(!glob_match("/api/v1/campaigns*", "/api/v1/leads"));
        assert!(glob_match("body.blocks[*].html", "body.blocks[3].html"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn config_errors_name_the_path() {
        let e = AttackProtection::from_json(r#"{"sqli": {"mode": "block", "paranoia": 7}}"#)
            .err()
            .map(|e| e.path);
        assert_eq!(e.as_deref(), Some(".sqli.paranoia"));
        let e = AttackProtection::from_json(r#"{"xss": {"mode": "loud"}}"#)
            .err()
            .map(|e| e.path);
        assert_eq!(e.as_deref(), Some(".xss.mode"));
        let e = AttackProtection::from_json(r#"{"exclusions": [{"route": "/x", "clases": []}]}"#)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("exclusions[0]") && m.contains("clases")));
        let ok = AttackProtection::from_json(
            r#"{"sqli": {"mode": "warn", "sensitivity": 2}, "anomaly_threshold": 7,
                "exclusions": [{"route": "/api/v1/campaigns*", "field": "body.html", "classes": ["xss"]}]}"#,
        );
        assert!(ok.is_ok_and(|c| c.sqli.mode == Mode::Warn && c.sqli.paranoia == 2));
    }
}
