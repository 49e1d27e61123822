//! The four detectors. Each reads one normalised value and reports rule hits with a score; the
//! engine sums scores into the anomaly total.
//!
//! Scores follow the CRS convention so thresholds mean the same thing to operators: 5 critical
//! (one is enough to block at the default threshold), 4 error, 3 warning, 2 notice. Every rule has
//! a minimum paranoia level; level 1 rules are the ones precise enough for free-text business data.

pub(crate) mod cmdi;
pub mod rules;
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
    /// Which bytes and byte pairs `text` holds, computed once for all detectors.
    pub profile: &'a Profile,
}

/// The bytes and byte pairs of one value, from a single pass: detectors ask "is there a `<`?"
/// or "could `document` be in here?" many times per value, and each answer is then a bit test
/// instead of a scan.
pub(crate) struct Profile {
    pub grams: Grams,
    bytes: [u64; 4],
}

impl Profile {
    pub(crate) fn new(s: &str) -> Profile {
        let b = s.as_bytes();
        let mut bytes = [0u64; 4];
        let mut g = [0u64; 16];
        for (i, &c) in b.iter().enumerate() {
            bytes[usize::from(c >> 6)] |= 1 << (c & 63);
            if let Some(&n) = b.get(i + 1) {
                let h = Grams::slot(c, n);
                g[h >> 6] |= 1 << (h & 63);
            }
        }
        Profile {
            grams: Grams(g),
            bytes,
        }
    }

    /// Whether the value holds byte `c`.
    pub(crate) fn has_byte(&self, c: u8) -> bool {
        self.bytes[usize::from(c >> 6)] & (1 << (c & 63)) != 0
    }

    /// Whether the value holds any of `set`.
    pub(crate) fn any_byte(&self, set: &[u8]) -> bool {
        set.iter().any(|&c| self.has_byte(c))
    }
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
    while let Some(p) = hay.get(start..).and_then(|h| find_from(h, needle, 0)) {
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

/// Finds the literal `needle` in `hay` from byte `from`. The detectors run dozens of searches for
/// short literals over short values; `str::find` builds a two-way searcher on every call, which
/// costs more than the search itself at these sizes, while a byte scan for the first byte and a
/// prefix compare does not.
pub(crate) fn find_from(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    let (&first, _) = n.split_first()?;
    let mut i = from;
    while let Some(p) = h.get(i..).and_then(|rest| memchr::memchr(first, rest)) {
        let at = i + p;
        if h[at..].starts_with(n) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// Whether `hay` contains the literal `needle` (see [`find_from`]).
pub(crate) fn has(hay: &str, needle: &str) -> bool {
    find_from(hay, needle, 0).is_some()
}

/// The byte pairs of a value, as a 1,024-bit set. A literal can only occur in the value when
/// each of its pairs does, so one pass over the value rules out almost every literal a detector
/// asks about before any search runs (a 200-byte value sets about a fifth of the bits; a
/// six-letter word then passes by chance well under once in a thousand).
pub(crate) struct Grams([u64; 16]);

impl Grams {
    fn slot(a: u8, b: u8) -> usize {
        let x = (u32::from(a) << 8 | u32::from(b)).wrapping_mul(0x9E37_79B1);
        (x >> 22) as usize
    }

    /// False when `needle` certainly does not occur; true when it may.
    pub(crate) fn may_contain(&self, needle: &str) -> bool {
        needle.as_bytes().windows(2).all(|w| {
            let h = Self::slot(w[0], w[1]);
            self.0[h >> 6] & (1 << (h & 63)) != 0
        })
    }

    /// Whether `hay` (the value these grams were built from) contains `needle`.
    pub(crate) fn has(&self, hay: &str, needle: &str) -> bool {
        self.may_contain(needle) && has(hay, needle)
    }
}
