//! The claims of the `/security` page, read from `docs/security-claims.md` when LeadGen is built.
//!
//! The page must never promise more than the tests prove: each row of the claims file has a status,
//! and only `proven` rows are shown as promises, each with the test that proves it. The others
//! are listed apart, marked planned or process, so a reader sees what is not yet promised.

use std::sync::LazyLock;

/// The claims file as it was when this binary was built.
const SOURCE: &str = include_str!("../../../../docs/security-claims.md");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Proven,
    Planned,
    Process,
}

impl Status {
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "proven" => Some(Self::Proven),
            "planned" => Some(Self::Planned),
            "process" => Some(Self::Process),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proven => "proven",
            Self::Planned => "planned",
            Self::Process => "process",
        }
    }
}

/// One row of the claims file.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: String,
    /// The `###` heading the row is under (e.g. "Data Encryption").
    pub section: String,
    /// The claim, as HTML rendered from its Markdown.
    pub text_html: String,
    pub status: Status,
    /// How it is proven (tests), or what is planned, as HTML.
    pub proof_html: String,
}

/// Splits a Markdown table row into its cells (`\|` is a pipe inside a cell).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cell.push('|');
            }
            '|' => out.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    out.push(cell);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// Reads every claim row (`| ID | claim | status | proof |`) of a claims file.
#[must_use]
pub fn parse(source: &str) -> Vec<Claim> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in source.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            section = h.trim().to_string();
            continue;
        }
        if !line.starts_with("| S-") && !line.starts_with("| P-") {
            continue;
        }
        let c = cells(line);
        let [id, text, status, proof] = c.as_slice() else {
            continue;
        };
        let Some(status) = Status::parse(status) else {
            continue;
        };
        out.push(Claim {
            id: id.clone(),
            section: section.clone(),
            text_html: super::markdown::inline_html(text),
            status,
            proof_html: super::markdown::inline_html(proof),
        });
    }
    out
}

/// The claims of this build.
pub fn all() -> &'static [Claim] {
    static CLAIMS: LazyLock<Vec<Claim>> = LazyLock::new(|| parse(SOURCE));
    &CLAIMS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_claims_file_is_read() {
        let rows = SOURCE
            .lines()
            .filter(|l| l.starts_with("| S-") || l.starts_with("| P-"))
            .count();
        assert!(rows > 100);
        assert_eq!(all().len(), rows, "a row with an unknown status or shape");
        assert!(all().iter().any(|c| c.status == Status::Proven));
        assert!(all().iter().all(|c| !c.section.is_empty()));
    }

    #[test]
    fn cells_keep_escaped_pipes_and_markdown() {
        let c = parse(
            "### Sec\n| S-X-1 | A `a\\|b` claim | proven | `it::x::y` |\n| S-X-2 | B | maybe | z |\n",
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text_html, "A <code>a|b</code> claim");
        assert_eq!(c[0].proof_html, "<code>it::x::y</code>");
        assert_eq!(c[0].section, "Sec");
    }
}
