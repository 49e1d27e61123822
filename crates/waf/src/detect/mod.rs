//! The four detectors. Each reads one normalised value and reports rule hits with a score; the
//! engine sums scores into the anomaly total.
//!
//! Scores follow the CRS convention so thresholds mean the same thing to operators: 5 critical
//! (one is enough to block at the default threshold), 4 error, 3 warning, 2 notice. Every rule has
//! a minimum paranoia level; level 1 rules are the ones precise enough for free-text business data.

pub(crate) mod cmdi;
pub(crate) mod sqli;
pub(crate) mod traversal;
pub(crate) mod xss;

use crate::extract::FieldKind;

/// Score of a match that blocks on its own at the default threshold.
pub(crate) const CRITICAL: u32 = 5;
/// Strong evidence, but not enough alone at the default threshold… with one more it is.
pub(crate) const ERROR: u32 = 4;
/// Suspicious.
pub(crate) const WARNING: u32 = 3;
/// Weak evidence that only matters in combination.
pub(crate) const NOTICE: u32 = 2;

/// One rule that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub rule: &'static str,
    pub score: u32,
}

/// What a detector gets to look at.
pub(crate) struct Input<'a> {
    /// Normalised (decoded, lower-cased) text.
    pub text: &'a str,
    /// A NUL byte was removed during normalisation.
    pub had_null: bool,
    /// Where the value came from.
    pub kind: FieldKind,
}

/// Collects hits for one value, honouring the paranoia level and keeping one hit per rule.
pub(crate) struct Hits {
    pub paranoia: u8,
    pub list: Vec<Hit>,
}

impl Hits {
    pub fn new(paranoia: u8) -> Self {
        Hits {
            paranoia,
            list: Vec::new(),
        }
    }

    /// Records `rule` if the configured paranoia includes level `pl`.
    pub fn add(&mut self, pl: u8, rule: &'static str, score: u32) {
        if pl > self.paranoia {
            return;
        }
        match self.list.iter_mut().find(|h| h.rule == rule) {
            Some(h) => h.score = h.score.max(score),
            None => self.list.push(Hit { rule, score }),
        }
    }
}

/// Whether `b` can be part of a word (identifier / command name).
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Finds `needle` as a whole word (not preceded or followed by a word byte), from `from`.
pub(crate) fn find_word(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let hb = hay.as_bytes();
    let mut start = from;
    while let Some(p) = hay.get(start..).and_then(|h| h.find(needle)) {
        let i = start + p;
        let end = i + needle.len();
        let before_ok = i == 0 || !is_word_byte(hb[i - 1]);
        let after_ok = end >= hb.len() || !is_word_byte(hb[end]);
        if before_ok && after_ok {
            return Some(i);
        }
        start = i + 1;
    }
    None
}
