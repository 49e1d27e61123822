//! Value normalisers, public so that leads entered by hand can go through the same rules.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value is not an email address. `Display` gives the reason after "not an email address: ".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailError {
    MissingAt,
    SeveralAts,
    EmptyLocalPart,
    LocalPartCharacter,
    LocalPartDots,
    LocalPartTooLong,
    DomainWithoutDot,
    DomainInvalid,
    TooLong,
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmailError::MissingAt => "missing '@'",
            EmailError::SeveralAts => "more than one '@'",
            EmailError::EmptyLocalPart => "nothing before '@'",
            EmailError::LocalPartCharacter => "a space or invalid character before '@'",
            EmailError::LocalPartDots => {
                "a dot at the start or end, or two dots in a row, before '@'"
            }
            EmailError::LocalPartTooLong => "more than 64 characters before '@'",
            EmailError::DomainWithoutDot => "the domain after '@' has no dot",
            EmailError::DomainInvalid => "the domain after '@' is not a valid domain name",
            EmailError::TooLong => "longer than 254 characters",
        })
    }
}

/// Checks an email address's syntax and returns it trimmed, case as typed.
///
/// Deliberately narrower than RFC 5322 (no quoted local parts, comments or IP literals): those
/// are legal but never seen on real B2B contacts, and accepting them would let junk through.
pub fn email(raw: &str) -> Result<&str, EmailError> {
    let s = raw.trim();
    if s.len() > 254 {
        return Err(EmailError::TooLong);
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err(EmailError::MissingAt);
    };
    if domain.contains('@') {
        return Err(EmailError::SeveralAts);
    }
    if local.is_empty() {
        return Err(EmailError::EmptyLocalPart);
    }
    if local.len() > 64 {
        return Err(EmailError::LocalPartTooLong);
    }
    let bad_local = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '<' | '>' | '(' | ')' | '[' | ']' | '\\' | ',' | ';' | ':' | '"'
            )
    };
    if local.chars().any(bad_local) {
        return Err(EmailError::LocalPartCharacter);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(EmailError::LocalPartDots);
    }
    if !domain.contains('.') {
        return Err(EmailError::DomainWithoutDot);
    }
    if !valid_host(domain) {
        return Err(EmailError::DomainInvalid);
    }
    Ok(s)
}

/// The comparison key for an address: trimmed and lowercased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A phone number in E.164 (`+` and 8–15 digits), or `None` when it cannot be read as one.
///
/// `country` is the row's ISO code (or unrecognised country text, or `None` when the row has no
/// country): ten-digit numbers without a prefix are taken as North American only for US, CA or no
/// country, because elsewhere they are national numbers whose country code we cannot know.
pub fn phone(raw: &str, country: Option<&str>) -> Option<String> {
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for c in raw.trim().chars() {
        match c {
            '0'..='9' => {
                // Longer than any E.164 number even with a 00 prefix.
                if digits.len() >= 17 {
                    return None;
                }
                digits.push(c);
            }
            '+' if !plus && digits.is_empty() => plus = true,
            '.' | '-' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            _ => return None,
        }
    }
    let international =
        |d: &str| ((8..=15).contains(&d.len()) && !d.starts_with('0')).then(|| format!("+{d}"));
    if plus {
        return international(&digits);
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return international(rest);
    }
    let north_american = matches!(country, None | Some("US") | Some("CA"));
    if !north_american {
        return None;
    }
    let area_code_ok = |d: &str| {
        d.as_bytes()
            .first()
            .is_some_and(|b| (b'2'..=b'9').contains(b))
    };
    match digits.len() {
        10 if area_code_ok(&digits) => Some(format!("+1{digits}")),
        11 if digits.starts_with('1') && area_code_ok(&digits[1..]) => Some(format!("+{digits}")),
        _ => None,
    }
}

/// A website or bare domain reduced to its host: lowercase, without scheme, `www.`, port or path.
/// `None` when it is not an http(s) URL or a domain name.
pub fn domain(raw: &str) -> Option<String> {
    let (host, rest) = split_web_address(raw)?;
    if !valid_url_tail(rest) {
        return None;
    }
    let host = host.to_lowercase();
    let host = match host.strip_prefix("www.") {
        // "www.com" is itself a domain; only strip when a domain remains.
        Some(stripped) if stripped.contains('.') => stripped.to_owned(),
        _ => host,
    };
    valid_host(&host).then_some(host)
}

/// A LinkedIn URL as `https://host/path` (query and fragment dropped), or `None` when it is not an
/// address on linkedin.com or one of its subdomains with a path.
pub fn linkedin_url(raw: &str) -> Option<String> {
    let (host, rest) = split_web_address(raw)?;
    let host = host.to_lowercase();
    if !(host == "linkedin.com" || host.ends_with(".linkedin.com")) || !valid_host(&host) {
        return None;
    }
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    if !valid_url_tail(path) {
        return None;
    }
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    Some(format!("https://{host}{path}"))
}

/// Splits "scheme://host:port/rest" into the host (port removed, trailing dot removed) and the rest
/// starting at '/', '?' or '#'. Only http and https schemes, or none, are accepted.
fn split_web_address(raw: &str) -> Option<(&str, &str)> {
    let s = raw.trim();
    let after_scheme = match s.find("://") {
        Some(i) => {
            let scheme = &s[..i];
            if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                return None;
            }
            &s[i + 3..]
        }
        None => s.strip_prefix("//").unwrap_or(s),
    };
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) => {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            host
        }
        None => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then_some((host, rest))
}

fn valid_url_tail(rest: &str) -> bool {
    !rest.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
    })
}

/// A DNS host name with at least two labels and an alphabetic (or punycode) top-level label.
/// Non-ASCII letters are allowed so that internationalised domains typed as Unicode pass.
fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let mut labels = 0;
    let mut last = "";
    for label in host.split('.') {
        let ok_chars = label.chars().all(|c| {
            c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
        });
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    let tld_ok = last.chars().count() >= 2
        && (last.chars().all(char::is_alphabetic)
            || (last.len() > 4
                && last[..4].eq_ignore_ascii_case("xn--")
                && last.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
    labels >= 2 && tld_ok
}

/// Splits a full name into (first, last). "Last, First" is understood, and lowercase particles
/// ("van der", "de la", ...) stay with the last name.
pub fn split_full_name(raw: &str) -> (Option<&str>, Option<&str>) {
    let s = raw.trim();
    if s.is_empty() {
        return (None, None);
    }
    if let Some((last, first)) = s.split_once(',') {
        let (first, last) = (first.trim(), last.trim());
        return (
            (!first.is_empty()).then_some(first),
            (!last.is_empty()).then_some(last),
        );
    }
    let words: Vec<(usize, &str)> = s
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - s.as_ptr() as usize, w))
        .collect();
    if words.len() < 2 {
        return (Some(s), None);
    }
    let mut last_start = words.len() - 1;
    while last_start > 1 && is_name_particle(words[last_start - 1].1) {
        last_start -= 1;
    }
    let split_at = words[last_start].0;
    (Some(s[..split_at].trim_end()), Some(&s[split_at..]))
}

fn is_name_particle(word: &str) -> bool {
    matches!(
        word,
        "van"
            | "von"
            | "der"
            | "den"
            | "de"
            | "del"
            | "della"
            | "di"
            | "da"
            | "du"
            | "la"
            | "le"
            | "dos"
            | "das"
            | "ter"
            | "ten"
            | "bin"
            | "ibn"
            | "al"
    )
}

/// Adds tags split on ';' or ',' to `into`, trimmed, skipping empty and already present ones
/// (case-insensitively, keeping the first spelling).
pub fn tags(raw: &str, into: &mut Vec<String>) {
    for tag in raw
        .split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if !into.iter().any(|t| t.to_lowercase() == tag.to_lowercase()) {
            into.push(tag.to_owned());
        }
    }
}

/// Reads a yes/no opt-out cell. `None` when the value is neither.
pub fn opt_out(raw: &str) -> Option<bool> {
    let v = raw.trim();
    const YES: &[&str] = &[
        "true",
        "yes",
        "y",
        "1",
        "t",
        "x",
        "on",
        "checked",
        "opted out",
        "opted-out",
        "optedout",
        "unsubscribed",
    ];
    const NO: &[&str] = &["false", "no", "n", "0", "f", "", "off", "unchecked"];
    if YES.iter().any(|y| y.eq_ignore_ascii_case(v)) {
        Some(true)
    } else if NO.iter().any(|n| n.eq_ignore_ascii_case(v)) {
        Some(false)
    } else {
        None
    }
}

/// Whether an email status (Apollo's "Email Status" and similar) means the address must not be
/// emailed. Apollo's "Unavailable" means it has no deliverable address for the person; invalid,
/// bounced and suppression states mean mail would bounce or is unwanted. Verification states
/// ("Verified", "Unverified", "Guessed", "Extrapolated", "Catch-all", ...) do not block.
pub fn email_status_blocks(raw: &str) -> bool {
    let key: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(
        key.as_str(),
        "unavailable"
            | "invalid"
            | "bounced"
            | "bounce"
            | "hardbounce"
            | "hardbounced"
            | "undeliverable"
            | "donotemail"
            | "donotcontact"
            | "unsubscribed"
            | "optedout"
            | "optout"
            | "suppressed"
            | "blocked"
            | "spamtrap"
            | "complained"
    )
}

/// Whether text contains control characters (C0, DEL or C1). `allow_line_breaks` permits tab, CR
/// and LF, as in multi-line notes.
pub(crate) fn has_control(s: &str, allow_line_breaks: bool) -> bool {
    let bytes = s.as_bytes();
    // Nearly every cell is clean: this branch-free scan vectorises, the exact one below does not.
    if bytes.iter().all(|&b| b >= 0x20 && b != 0x7f && b != 0xc2) {
        return false;
    }
    bytes.iter().enumerate().any(|(i, &b)| {
        (b < 0x20 && !(allow_line_breaks && matches!(b, b'\t' | b'\n' | b'\r')))
            || b == 0x7f
            // C1 controls U+0080..=U+009F are encoded as C2 80..=C2 9F.
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

/// A seniority level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seniority {
    Owner,
    Founder,
    CLevel,
    Partner,
    Vp,
    Head,
    Director,
    Manager,
    Senior,
    Entry,
    Intern,
}

impl Seniority {
    pub const ALL: [Seniority; 11] = [
        Seniority::Owner,
        Seniority::Founder,
        Seniority::CLevel,
        Seniority::Partner,
        Seniority::Vp,
        Seniority::Head,
        Seniority::Director,
        Seniority::Manager,
        Seniority::Senior,
        Seniority::Entry,
        Seniority::Intern,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Seniority::Owner => "owner",
            Seniority::Founder => "founder",
            Seniority::CLevel => "c_level",
            Seniority::Partner => "partner",
            Seniority::Vp => "vp",
            Seniority::Head => "head",
            Seniority::Director => "director",
            Seniority::Manager => "manager",
            Seniority::Senior => "senior",
            Seniority::Entry => "entry",
            Seniority::Intern => "intern",
        }
    }

    /// Parses a seniority label as CRMs write it ("VP", "C-Suite", "c_suite", "Director", ...).
    pub fn parse(raw: &str) -> Option<Seniority> {
        let key: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "owner" => Seniority::Owner,
            "founder" | "cofounder" => Seniority::Founder,
            "csuite" | "clevel" | "cxo" | "chief" | "executive" => Seniority::CLevel,
            "partner" => Seniority::Partner,
            "vp" | "vicepresident" | "svp" | "evp" | "avp" => Seniority::Vp,
            "head" => Seniority::Head,
            "director" => Seniority::Director,
            "manager" => Seniority::Manager,
            "senior" | "sr" => Seniority::Senior,
            "entry" | "entrylevel" | "junior" | "jr" => Seniority::Entry,
            "intern" | "internship" | "trainee" => Seniority::Intern,
            _ => return None,
        })
    }

    /// Infers seniority from a job title's words. The checks run from the most to the least
    /// telling word, so "Founder & CEO" is a founder and "Senior Vice President" a VP.
    pub fn from_title(title: &str) -> Option<Seniority> {
        let lower = title.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |w: &str| words.contains(&w);
        let follows =
            |first: &str, second: &str| words.windows(2).any(|p| p[0] == first && p[1] == second);
        const C_LEVEL: &[&str] = &[
            "chief", "ceo", "cto", "cfo", "coo", "cmo", "cio", "ciso", "cro", "cpo", "cso", "cdo",
            "cco", "chro",
        ];
        if has("founder") || has("cofounder") {
            return Some(Seniority::Founder);
        }
        // A product owner is a Scrum role, not a business owner.
        if has("owner") && !follows("product", "owner") {
            return Some(Seniority::Owner);
        }
        let vice = has("vp")
            || has("svp")
            || has("evp")
            || has("avp")
            || follows("vice", "president")
            || has("vicepresident");
        if words.iter().any(|w| C_LEVEL.contains(w)) || (has("president") && !vice) {
            return Some(Seniority::CLevel);
        }
        if vice {
            return Some(Seniority::Vp);
        }
        if has("head") {
            return Some(Seniority::Head);
        }
        if has("director") {
            return Some(Seniority::Director);
        }
        if has("manager") || has("mgr") {
            return Some(Seniority::Manager);
        }
        if has("partner") {
            return Some(Seniority::Partner);
        }
        if has("intern") || has("internship") || has("trainee") {
            return Some(Seniority::Intern);
        }
        if has("senior") || has("sr") {
            return Some(Seniority::Senior);
        }
        if has("junior") || has("jr") || has("apprentice") {
            return Some(Seniority::Entry);
        }
        None
    }
}

impl fmt::Display for Seniority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A company headcount bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EmployeeRange {
    #[serde(rename = "1-10")]
    Size1To10,
    #[serde(rename = "11-50")]
    Size11To50,
    #[serde(rename = "51-200")]
    Size51To200,
    #[serde(rename = "201-500")]
    Size201To500,
    #[serde(rename = "501-1000")]
    Size501To1000,
    #[serde(rename = "1001-5000")]
    Size1001To5000,
    #[serde(rename = "5001-10000")]
    Size5001To10000,
    #[serde(rename = "10001+")]
    Size10001Plus,
}

impl EmployeeRange {
    pub const ALL: [EmployeeRange; 8] = [
        EmployeeRange::Size1To10,
        EmployeeRange::Size11To50,
        EmployeeRange::Size51To200,
        EmployeeRange::Size201To500,
        EmployeeRange::Size501To1000,
        EmployeeRange::Size1001To5000,
        EmployeeRange::Size5001To10000,
        EmployeeRange::Size10001Plus,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EmployeeRange::Size1To10 => "1-10",
            EmployeeRange::Size11To50 => "11-50",
            EmployeeRange::Size51To200 => "51-200",
            EmployeeRange::Size201To500 => "201-500",
            EmployeeRange::Size501To1000 => "501-1000",
            EmployeeRange::Size1001To5000 => "1001-5000",
            EmployeeRange::Size5001To10000 => "5001-10000",
            EmployeeRange::Size10001Plus => "10001+",
        }
    }

    /// The bucket holding a headcount of `n` (0 counts as the smallest bucket).
    pub fn from_count(n: u64) -> EmployeeRange {
        match n {
            0..=10 => EmployeeRange::Size1To10,
            11..=50 => EmployeeRange::Size11To50,
            51..=200 => EmployeeRange::Size51To200,
            201..=500 => EmployeeRange::Size201To500,
            501..=1000 => EmployeeRange::Size501To1000,
            1001..=5000 => EmployeeRange::Size1001To5000,
            5001..=10000 => EmployeeRange::Size5001To10000,
            _ => EmployeeRange::Size10001Plus,
        }
    }

    /// Parses "51-200", "51 – 200", "10,001+", "10000+" or a plain count ("250", "1,200").
    ///
    /// A range goes to the bucket of its upper end, so a range that straddles buckets
    /// ("1000-5000") lands where most of it lies; "N+" goes to the bucket above N.
    pub fn parse(raw: &str) -> Option<EmployeeRange> {
        let s = raw.trim();
        if let Some(from) = s.strip_suffix('+') {
            return parse_count(from).map(|n| EmployeeRange::from_count(n.saturating_add(1)));
        }
        if let Some((lo, hi)) = s.split_once(['-', '\u{2013}', '\u{2014}']) {
            let (lo, hi) = (parse_count(lo)?, parse_count(hi)?);
            return (lo <= hi && hi > 0).then(|| EmployeeRange::from_count(hi));
        }
        let n = parse_count(s)?;
        (n > 0).then(|| EmployeeRange::from_count(n))
    }
}

impl fmt::Display for EmployeeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-negative count: digits, optionally grouped by ',' in threes, optionally with a ".0"
/// fraction as spreadsheets write whole numbers.
fn parse_count(raw: &str) -> Option<u64> {
    let s = raw.trim();
    let s = match s.split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => s,
    };
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    let mut groups = s.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 && s.contains(',') {
        return None;
    }
    let mut n: u64 = 0;
    for (i, group) in std::iter::once(first).chain(groups).enumerate() {
        if i > 0 && group.len() != 3 {
            return None;
        }
        for b in group.bytes() {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
    }
    Some(n)
}

/// ISO 3166-1 alpha-2 code for a country name or code, `None` when not recognised.
pub fn country_code(raw: &str) -> Option<&'static str> {
    let s = raw.trim();
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        let upper = [
            s.as_bytes()[0].to_ascii_uppercase(),
            s.as_bytes()[1].to_ascii_uppercase(),
        ];
        if &upper == b"UK" {
            return Some("GB");
        }
        return ISO_ALPHA2
            .as_bytes()
            .chunks_exact(2)
            .position(|c| c == upper)
            .and_then(|i| ISO_ALPHA2.get(i * 2..i * 2 + 2));
    }
    // Most cells are a name exactly as listed but for case; only the rest pay for normalising.
    if let Some(&(_, code)) = COUNTRY_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
    {
        return Some(code);
    }
    let mut key = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '.' | '\'' => {}
            '&' => key.push_str(" and "),
            c if c.is_alphanumeric() => key.extend(c.to_lowercase()),
            _ => key.push(' '),
        }
    }
    let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
    let key = key.strip_prefix("the ").unwrap_or(&key);
    if key.len() == 2 && key != s {
        // "U.S." and "U.K." reduce to two letters.
        return country_code(key);
    }
    COUNTRY_NAMES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|&(_, code)| code)
}

/// A country cell as stored: the ISO code where recognised, else the trimmed text.
pub fn country(raw: &str) -> String {
    country_code(raw).map_or_else(|| raw.trim().to_owned(), str::to_owned)
}

/// Every assigned ISO 3166-1 alpha-2 code, concatenated.
const ISO_ALPHA2: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ\
CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGM\
GNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLT\
LULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPN\
PRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ\
UAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// Normalised names (lowercase, no dots, single spaces, "&" as "and") and alpha-3 codes.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("usa", "US"),
    ("united states", "US"),
    ("united states of america", "US"),
    ("america", "US"),
    ("us of a", "US"),
    ("canada", "CA"),
    ("can", "CA"),
    ("united kingdom", "GB"),
    ("united kingdom of great britain and northern ireland", "GB"),
    ("great britain", "GB"),
    ("britain", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northern ireland", "GB"),
    ("gbr", "GB"),
    ("germany", "DE"),
    ("deutschland", "DE"),
    ("deu", "DE"),
    ("france", "FR"),
    ("fra", "FR"),
    ("spain", "ES"),
    ("españa", "ES"),
    ("espana", "ES"),
    ("esp", "ES"),
    ("italy", "IT"),
    ("italia", "IT"),
    ("ita", "IT"),
    ("netherlands", "NL"),
    ("nederland", "NL"),
    ("holland", "NL"),
    ("nld", "NL"),
    ("ireland", "IE"),
    ("republic of ireland", "IE"),
    ("éire", "IE"),
    ("eire", "IE"),
    ("irl", "IE"),
    ("australia", "AU"),
    ("aus", "AU"),
    ("india", "IN"),
    ("ind", "IN"),
    ("brazil", "BR"),
    ("brasil", "BR"),
    ("bra", "BR"),
    ("mexico", "MX"),
    ("méxico", "MX"),
    ("mex", "MX"),
    ("japan", "JP"),
    ("jpn", "JP"),
    ("singapore", "SG"),
    ("sgp", "SG"),
    ("switzerland", "CH"),
    ("schweiz", "CH"),
    ("suisse", "CH"),
    ("svizzera", "CH"),
    ("che", "CH"),
    ("sweden", "SE"),
    ("sverige", "SE"),
    ("swe", "SE"),
    ("austria", "AT"),
    ("österreich", "AT"),
    ("belgium", "BE"),
    ("belgique", "BE"),
    ("belgië", "BE"),
    ("denmark", "DK"),
    ("danmark", "DK"),
    ("norway", "NO"),
    ("norge", "NO"),
    ("finland", "FI"),
    ("suomi", "FI"),
    ("iceland", "IS"),
    ("portugal", "PT"),
    ("poland", "PL"),
    ("polska", "PL"),
    ("czech republic", "CZ"),
    ("czechia", "CZ"),
    ("slovakia", "SK"),
    ("hungary", "HU"),
    ("romania", "RO"),
    ("bulgaria", "BG"),
    ("greece", "GR"),
    ("croatia", "HR"),
    ("slovenia", "SI"),
    ("serbia", "RS"),
    ("estonia", "EE"),
    ("latvia", "LV"),
    ("lithuania", "LT"),
    ("luxembourg", "LU"),
    ("malta", "MT"),
    ("cyprus", "CY"),
    ("ukraine", "UA"),
    ("turkey", "TR"),
    ("türkiye", "TR"),
    ("turkiye", "TR"),
    ("russia", "RU"),
    ("russian federation", "RU"),
    ("israel", "IL"),
    ("united arab emirates", "AE"),
    ("uae", "AE"),
    ("saudi arabia", "SA"),
    ("qatar", "QA"),
    ("egypt", "EG"),
    ("south africa", "ZA"),
    ("nigeria", "NG"),
    ("kenya", "KE"),
    ("morocco", "MA"),
    ("china", "CN"),
    ("peoples republic of china", "CN"),
    ("hong kong", "HK"),
    ("taiwan", "TW"),
    ("south korea", "KR"),
    ("korea", "KR"),
    ("republic of korea", "KR"),
    ("korea republic of", "KR"),
    ("vietnam", "VN"),
    ("viet nam", "VN"),
    ("thailand", "TH"),
    ("malaysia", "MY"),
    ("indonesia", "ID"),
    ("philippines", "PH"),
    ("pakistan", "PK"),
    ("bangladesh", "BD"),
    ("sri lanka", "LK"),
    ("new zealand", "NZ"),
    ("argentina", "AR"),
    ("chile", "CL"),
    ("colombia", "CO"),
    ("peru", "PE"),
    ("uruguay", "UY"),
    ("venezuela", "VE"),
    ("costa rica", "CR"),
    ("puerto rico", "PR"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("  Ana@Example.COM "), Ok("Ana@Example.COM"));
        assert_eq!(
            email("first.last+tag@sub.example.co.uk"),
            Ok("first.last+tag@sub.example.co.uk")
        );
        assert_eq!(
            email("jos.al-ha172@umbrella.example"),
            Ok("jos.al-ha172@umbrella.example")
        );
        assert_eq!(
            email("zoe.al-ha20 at stark.example"),
            Err(EmailError::MissingAt)
        );
        assert_eq!(email("a@b@c.com"), Err(EmailError::SeveralAts));
        assert_eq!(email("@example.com"), Err(EmailError::EmptyLocalPart));
        assert_eq!(
            email("a b@example.com"),
            Err(EmailError::LocalPartCharacter)
        );
        assert_eq!(email(".a@example.com"), Err(EmailError::LocalPartDots));
        assert_eq!(email("a..b@example.com"), Err(EmailError::LocalPartDots));
        assert_eq!(email("a@localhost"), Err(EmailError::DomainWithoutDot));
        assert_eq!(email("a@exa mple.com"), Err(EmailError::DomainInvalid));
        assert_eq!(email("a@-x.com"), Err(EmailError::DomainInvalid));
        assert_eq!(email("a@x..com"), Err(EmailError::DomainInvalid));
        assert_eq!(email("a@1.2.3.4"), Err(EmailError::DomainInvalid));
        assert_eq!(email("a@bücher.de"), Ok("a@bücher.de"));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(email(&long), Err(EmailError::TooLong));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(email(&long_local), Err(EmailError::LocalPartTooLong));
        assert_eq!(
            email_key(" JOS.Kowal150@STARK.example "),
            "jos.kowal150@stark.example"
        );
        assert_eq!(EmailError::MissingAt.to_string(), "missing '@'");
    }

    #[test]
    fn phones() {
        assert_eq!(
            phone("+1 415 555 1000", Some("US")).as_deref(),
            Some("+14155551000")
        );
        assert_eq!(
            phone("+44 (20) 7946-0958", Some("GB")).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            phone("0044 20 7946 0958", None).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            phone("(415) 555-1000", Some("US")).as_deref(),
            Some("+14155551000")
        );
        assert_eq!(phone("415.555.1000", None).as_deref(), Some("+14155551000"));
        assert_eq!(
            phone("416 555 1000", Some("CA")).as_deref(),
            Some("+14165551000")
        );
        assert_eq!(
            phone("1 415 555 1000", Some("US")).as_deref(),
            Some("+14155551000")
        );
        // A national number outside North America has no knowable country code.
        assert_eq!(phone("030 1234567", Some("DE")), None);
        assert_eq!(phone("4155551000", Some("DE")), None);
        assert_eq!(phone("4155551000", Some("Narnia")), None);
        assert_eq!(phone("+1 415 555", None), None);
        assert_eq!(phone("+1234567890123456", None), None);
        assert_eq!(phone("+0 415 555 1000", None), None);
        assert_eq!(phone("0155551000", None), None);
        assert_eq!(phone("call me", None), None);
        assert_eq!(phone("+1 415 555 1000 ext 5", None), None);
        assert_eq!(phone("1+415 555 1000", None), None);
        assert_eq!(phone("", None), None);
    }

    #[test]
    fn domains() {
        assert_eq!(
            domain("https://umbrella.example").as_deref(),
            Some("umbrella.example")
        );
        assert_eq!(domain("globex.example").as_deref(), Some("globex.example"));
        assert_eq!(
            domain(" HTTP://WWW.Acme.COM:8080/about?x=1#top ").as_deref(),
            Some("acme.com")
        );
        assert_eq!(domain("www.acme.co.uk/").as_deref(), Some("acme.co.uk"));
        assert_eq!(domain("//cdn.acme.com").as_deref(), Some("cdn.acme.com"));
        assert_eq!(domain("acme.com.").as_deref(), Some("acme.com"));
        assert_eq!(domain("www.com").as_deref(), Some("www.com"));
        assert_eq!(domain("münchen.de").as_deref(), Some("münchen.de"));
        assert_eq!(
            domain("xn--mnchen-3ya.de").as_deref(),
            Some("xn--mnchen-3ya.de")
        );
        for bad in [
            "htp//bad",
            "not a url",
            "http://",
            "http://exa mple..com/<x>",
            "ftp://acme.com",
            "acme",
            "http://acme.com/a b",
            "http://user@acme.com",
            "acme.com:http",
            "http://1.2.3.4",
            "-acme.com",
            "acme.c",
            "",
        ] {
            assert_eq!(domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn linkedin_urls() {
        assert_eq!(
            linkedin_url("https://www.linkedin.com/in/p0").as_deref(),
            Some("https://www.linkedin.com/in/p0")
        );
        assert_eq!(
            linkedin_url("linkedin.com/in/ana-maria/?trk=abc").as_deref(),
            Some("https://linkedin.com/in/ana-maria")
        );
        assert_eq!(
            linkedin_url("HTTP://DE.LinkedIn.com/in/x").as_deref(),
            Some("https://de.linkedin.com/in/x")
        );
        assert_eq!(linkedin_url("https://evil-linkedin.com/in/x"), None);
        assert_eq!(linkedin_url("https://linkedin.com.evil.example/in/x"), None);
        assert_eq!(linkedin_url("https://example.com/in/x"), None);
        assert_eq!(linkedin_url("https://www.linkedin.com/"), None);
        assert_eq!(linkedin_url("https://www.linkedin.com/in/a b"), None);
    }

    #[test]
    fn full_names() {
        assert_eq!(split_full_name("Ana Núñez"), (Some("Ana"), Some("Núñez")));
        assert_eq!(
            split_full_name("Priya van der Berg"),
            (Some("Priya"), Some("van der Berg"))
        );
        assert_eq!(
            split_full_name("Mary Jane  Watson"),
            (Some("Mary Jane"), Some("Watson"))
        );
        assert_eq!(
            split_full_name("Müller, Björn"),
            (Some("Björn"), Some("Müller"))
        );
        assert_eq!(split_full_name("Cher"), (Some("Cher"), None));
        assert_eq!(split_full_name("de Gaulle"), (Some("de"), Some("Gaulle")));
        assert_eq!(split_full_name("  "), (None, None));
    }

    #[test]
    fn tag_lists() {
        let mut out = Vec::new();
        tags("vip; Event 2024, ,vip", &mut out);
        tags("VIP;partner", &mut out);
        assert_eq!(out, vec!["vip", "Event 2024", "partner"]);
    }

    #[test]
    fn opt_outs_and_email_statuses() {
        for yes in ["true", "TRUE", "Yes", "1", "y", "Opted out"] {
            assert_eq!(opt_out(yes), Some(true), "{yes}");
        }
        for no in ["false", "No", "0", "", " n "] {
            assert_eq!(opt_out(no), Some(false), "{no}");
        }
        assert_eq!(opt_out("maybe"), None);
        for blocks in [
            "Unavailable",
            "Invalid",
            "Bounced",
            "hard_bounce",
            "Do Not Email",
        ] {
            assert!(email_status_blocks(blocks), "{blocks}");
        }
        for ok in [
            "Verified",
            "Unverified",
            "Guessed",
            "Extrapolated",
            "Catch-all",
            "",
        ] {
            assert!(!email_status_blocks(ok), "{ok}");
        }
    }

    #[test]
    fn control_characters() {
        assert!(has_control("a\u{1}b", false));
        assert!(has_control("a\nb", false));
        assert!(!has_control("a\nb\tc", true));
        assert!(has_control("a\u{7f}", true));
        assert!(has_control("a\u{85}", true));
        assert!(!has_control("Núñez ©", false));
    }

    #[test]
    fn seniority_labels() {
        let cases = [
            ("VP", Seniority::Vp),
            ("C-Suite", Seniority::CLevel),
            ("c_suite", Seniority::CLevel),
            ("c_level", Seniority::CLevel),
            ("Director", Seniority::Director),
            ("manager", Seniority::Manager),
            ("Senior", Seniority::Senior),
            ("entry", Seniority::Entry),
            ("Owner", Seniority::Owner),
            ("Founder", Seniority::Founder),
            ("head", Seniority::Head),
            ("Partner", Seniority::Partner),
            ("Intern", Seniority::Intern),
        ];
        for (label, want) in cases {
            assert_eq!(Seniority::parse(label), Some(want), "{label}");
        }
        for s in Seniority::ALL {
            assert_eq!(Seniority::parse(s.as_str()), Some(s));
        }
        assert_eq!(Seniority::parse("grand poobah"), None);
    }

    #[test]
    fn seniority_from_titles() {
        let cases = [
            ("CEO", Some(Seniority::CLevel)),
            ("CTO", Some(Seniority::CLevel)),
            ("Chief Revenue Officer", Some(Seniority::CLevel)),
            ("President", Some(Seniority::CLevel)),
            ("VP Sales", Some(Seniority::Vp)),
            ("Senior Vice President, Marketing", Some(Seniority::Vp)),
            ("Head of R&D", Some(Seniority::Head)),
            ("Director, IT", Some(Seniority::Director)),
            ("Marketing Manager", Some(Seniority::Manager)),
            ("Founder & CEO", Some(Seniority::Founder)),
            ("Co-Founder", Some(Seniority::Founder)),
            ("Owner", Some(Seniority::Owner)),
            ("Product Owner", None),
            ("Managing Partner", Some(Seniority::Partner)),
            ("Partner Manager", Some(Seniority::Manager)),
            ("Marketing Intern", Some(Seniority::Intern)),
            ("Sr. Software Engineer", Some(Seniority::Senior)),
            ("Junior Analyst", Some(Seniority::Entry)),
            ("Account Executive", None),
            ("Internal Auditor", None),
        ];
        for (title, want) in cases {
            assert_eq!(Seniority::from_title(title), want, "{title}");
        }
    }

    #[test]
    fn employee_ranges() {
        let cases = [
            ("51-200", EmployeeRange::Size51To200),
            ("51 - 200", EmployeeRange::Size51To200),
            ("51–200", EmployeeRange::Size51To200),
            ("11-50", EmployeeRange::Size11To50),
            ("1001-5000", EmployeeRange::Size1001To5000),
            ("1000-5000", EmployeeRange::Size1001To5000),
            ("10,001+", EmployeeRange::Size10001Plus),
            ("10000+", EmployeeRange::Size10001Plus),
            ("5000+", EmployeeRange::Size5001To10000),
            ("250", EmployeeRange::Size201To500),
            ("1,200", EmployeeRange::Size1001To5000),
            ("7", EmployeeRange::Size1To10),
            ("10", EmployeeRange::Size1To10),
            ("11", EmployeeRange::Size11To50),
            ("250.0", EmployeeRange::Size201To500),
            ("1000000", EmployeeRange::Size10001Plus),
        ];
        for (raw, want) in cases {
            assert_eq!(EmployeeRange::parse(raw), Some(want), "{raw}");
        }
        for bad in [
            "lots", "-5", "abc", "", "0", "200-51", "1,20", "12.5", "5-", "+", "1,0000",
        ] {
            assert_eq!(EmployeeRange::parse(bad), None, "{bad}");
        }
        for r in EmployeeRange::ALL {
            assert_eq!(EmployeeRange::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn employee_range_serde_uses_bucket_labels() -> Result<(), serde_json::Error> {
        for r in EmployeeRange::ALL {
            assert_eq!(serde_json::to_string(&r)?, format!("\"{}\"", r.as_str()));
        }
        Ok(())
    }

    #[test]
    fn countries() {
        let cases = [
            ("United States", "US"),
            ("USA", "US"),
            ("U.S.", "US"),
            ("U.S.A.", "US"),
            ("us", "US"),
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            ("U.K.", "GB"),
            ("GB", "GB"),
            ("Germany", "DE"),
            ("Deutschland", "DE"),
            ("France", "FR"),
            ("Spain", "ES"),
            ("Italy", "IT"),
            ("The Netherlands", "NL"),
            ("Ireland", "IE"),
            ("Australia", "AU"),
            ("India", "IN"),
            ("Brazil", "BR"),
            ("México", "MX"),
            ("Japan", "JP"),
            ("Singapore", "SG"),
            ("Switzerland", "CH"),
            ("Sweden", "SE"),
            ("Canada", "CA"),
            ("ca", "CA"),
            ("nz", "NZ"),
            ("Bosnia", "Bosnia"),
        ];
        for (raw, want) in cases {
            assert_eq!(country(raw), want, "{raw}");
        }
        assert_eq!(country_code("ZZ"), None);
        assert_eq!(country("  Narnia "), "Narnia");
        assert_eq!(ISO_ALPHA2.len() % 2, 0);
        assert_eq!(ISO_ALPHA2.len() / 2, 249);
    }
}
