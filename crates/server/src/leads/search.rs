//! Lead search: the query-string filters, the full-text syntax users expect (words, "quoted
//! phrases", `OR`, `-exclude`), sort orders and opaque keyset cursors, turned into one SQL
//! statement with every value bound. Row-level security adds the organization and ACL rules to
//! whatever this builds, so a filter can only narrow what the principal may see.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{EMPLOYEE_RANGES, SENIORITIES, STATUSES};
use crate::leads::LeadsError;

const MAX_TERMS: usize = 16;

/// The query string of list, count and export.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Full text over name, title, company and notes: words, "quoted phrases", OR, -exclusions.
    pub q: Option<String>,
    pub title: Option<String>,
    /// Comma-separated values for the enumerations and tags.
    pub seniority: Option<String>,
    pub department: Option<String>,
    pub industry: Option<String>,
    pub employee_range: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub tags: Option<String>,
    pub status: Option<String>,
    pub owner: Option<Uuid>,
    /// The leads of one company.
    pub company: Option<Uuid>,
    /// The leads of one list (one the caller sees; another list matches nothing).
    pub list: Option<Uuid>,
    pub score_min: Option<i16>,
    pub score_max: Option<i16>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_after: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_before: Option<OffsetDateTime>,
    pub has_email: Option<bool>,
    /// California residents only (`true`) or everyone else (`false`).
    pub california: Option<bool>,
    /// An exact email address, looked up through its blind index.
    pub email: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Export only: include do-not-contact leads (flagged as such).
    pub include_do_not_contact: Option<bool>,
    /// Export only: include leads whose person opted out of the sale or sharing of their data
    /// (CCPA), flagged `do_not_sell`.
    pub include_do_not_sell: Option<bool>,
    /// Export only: `csv` (default) or `json`.
    pub format: Option<String>,
    /// Count only: count every match instead of stopping after `repo::COUNT_CAP`.
    pub exact: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "-created")]
    NewestFirst,
    #[serde(rename = "created")]
    OldestFirst,
    #[serde(rename = "-score")]
    ScoreDesc,
    #[serde(rename = "score")]
    ScoreAsc,
}

impl Sort {
    fn parse(s: Option<&str>) -> Result<Self, LeadsError> {
        Ok(match s.unwrap_or("-created") {
            "-created" => Self::NewestFirst,
            "created" => Self::OldestFirst,
            "-score" => Self::ScoreDesc,
            "score" => Self::ScoreAsc,
            _ => {
                return Err(LeadsError::Invalid(
                    "sort: one of -created, created, -score, score".into(),
                ));
            }
        })
    }
}

/// Where the next page starts: the last row's sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub sort: Sort,
    pub score: i16,
    pub id: Uuid,
}

impl Cursor {
    #[must_use]
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(s: &str) -> Result<Self, LeadsError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| LeadsError::Invalid("cursor: not a cursor this server issued".into()))
    }
}

/// Checked filters.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tsquery: Option<String>,
    /// The full-text condition matches few leads (see [`Lexicon`]): read them through the
    /// full-text index, then sort, instead of walking the newest leads until a page is full.
    pub text_rare: bool,
    pub title: Option<String>,
    pub seniority: Vec<String>,
    pub department: Option<String>,
    pub industry: Option<String>,
    pub employee_range: Vec<String>,
    pub country: Vec<String>,
    pub region: Vec<String>,
    pub tags: Vec<String>,
    pub status: Vec<String>,
    pub owner: Option<Uuid>,
    pub company: Option<Uuid>,
    pub list: Option<Uuid>,
    pub score_min: Option<i16>,
    pub score_max: Option<i16>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub has_email: Option<bool>,
    /// Blind index of the `email` parameter; an address that is not one matches nothing.
    pub email_index: Option<Option<[u8; 32]>>,
    pub include_do_not_contact: bool,
    pub include_do_not_sell: bool,
    pub california: Option<bool>,
}

/// A page request.
#[derive(Debug)]
pub struct Page {
    pub sort: Sort,
    pub limit: u32,
    pub after: Option<Cursor>,
}

fn list(field: &str, v: Option<&str>, allowed: Option<&[&str]>) -> Result<Vec<String>, LeadsError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if items.len() > 50 {
        return Err(LeadsError::Invalid(format!("{field}: at most 50 values")));
    }
    if let Some(allowed) = allowed
        && let Some(bad) = items.iter().find(|i| !allowed.contains(&i.as_str()))
    {
        return Err(LeadsError::Invalid(format!(
            "{field}: {bad:?} is not one of {}",
            allowed.join(", ")
        )));
    }
    Ok(items)
}

fn short(field: &str, v: Option<&str>) -> Result<Option<String>, LeadsError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 200 => Err(LeadsError::Invalid(format!(
            "{field}: at most 200 characters"
        ))),
        other => Ok(other.map(str::to_string)),
    }
}

impl SearchParams {
    /// Checks every parameter; `email_index` computes the blind index of an exact-email filter.
    pub fn parse(
        &self,
        email_index: impl Fn(&str) -> Option<[u8; 32]>,
    ) -> Result<(Filter, Page), LeadsError> {
        if let (Some(a), Some(b)) = (self.score_min, self.score_max)
            && a > b
        {
            return Err(LeadsError::Invalid(
                "score_min: must not exceed score_max".into(),
            ));
        }
        for (f, v) in [("score_min", self.score_min), ("score_max", self.score_max)] {
            if v.is_some_and(|v| !(0..=100).contains(&v)) {
                return Err(LeadsError::Invalid(format!("{f}: 0 to 100")));
            }
        }
        let q = short("q", self.q.as_deref())?;
        let text = q.as_deref().map(text_query).transpose()?.flatten();
        let filter = Filter {
            tsquery: text.as_ref().map(|t| t.0.clone()),
            text_rare: text.is_some_and(|t| t.1),
            title: short("title", self.title.as_deref())?,
            seniority: list("seniority", self.seniority.as_deref(), Some(&SENIORITIES))?,
            department: short("department", self.department.as_deref())?,
            industry: short("industry", self.industry.as_deref())?,
            employee_range: list(
                "employee_range",
                self.employee_range.as_deref(),
                Some(&EMPLOYEE_RANGES),
            )?,
            country: list("country", self.country.as_deref(), None)?,
            region: list("region", self.region.as_deref(), None)?,
            tags: list("tags", self.tags.as_deref(), None)?,
            status: list("status", self.status.as_deref(), Some(&STATUSES))?,
            owner: self.owner,
            company: self.company,
            list: self.list,
            score_min: self.score_min,
            score_max: self.score_max,
            created_after: self.created_after,
            created_before: self.created_before,
            has_email: self.has_email,
            email_index: self.email.as_deref().map(email_index),
            include_do_not_contact: self.include_do_not_contact.unwrap_or(false),
            include_do_not_sell: self.include_do_not_sell.unwrap_or(false),
            california: self.california,
        };
        let after = self.cursor.as_deref().map(Cursor::decode).transpose()?;
        let sort = match after {
            Some(c) => c.sort,
            None => Sort::parse(self.sort.as_deref())?,
        };
        if let Some(c) = after
            && self.sort.is_some()
            && Sort::parse(self.sort.as_deref())? != c.sort
        {
            return Err(LeadsError::Invalid(
                "cursor: it belongs to another sort order".into(),
            ));
        }
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(LeadsError::Invalid("limit: 1 to 200".into()));
        }
        Ok((filter, Page { sort, limit, after }))
    }
}

/// Appends ` AND …` for each filter.
pub fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, f: &Filter, for_export: bool) {
    if let Some(q) = &f.tsquery {
        qb.push(" AND search OPERATOR(app.@@) to_tsquery('simple', ")
            .push_bind(q.clone())
            .push(")");
    }
    if let Some(t) = &f.title {
        qb.push(" AND title ILIKE ")
            .push_bind(format!("%{}%", like_escape(t)));
    }
    if !f.seniority.is_empty() {
        qb.push(" AND seniority = ANY(")
            .push_bind(f.seniority.clone())
            .push(")");
    }
    if let Some(d) = &f.department {
        qb.push(" AND department ILIKE ")
            .push_bind(format!("%{}%", like_escape(d)));
    }
    if let Some(i) = &f.industry {
        qb.push(" AND industry ILIKE ")
            .push_bind(format!("%{}%", like_escape(i)));
    }
    for (col, v) in [
        ("employee_range", &f.employee_range),
        ("country", &f.country),
        ("region", &f.region),
        ("status", &f.status),
    ] {
        if !v.is_empty() {
            qb.push(format_args!(" AND {col} = ANY("))
                .push_bind(v.clone())
                .push(")");
        }
    }
    if !f.tags.is_empty() {
        qb.push(" AND tags && ").push_bind(f.tags.clone());
    }
    if let Some(o) = f.owner {
        qb.push(" AND owner_id = ").push_bind(o);
    }
    if let Some(c) = f.company {
        qb.push(" AND company_id = ").push_bind(c);
    }
    if let Some(l) = f.list {
        // The entries' policy applies: a list the caller does not see has no entries for it.
        qb.push(" AND id IN (SELECT e.lead_id FROM app.lead_list_entries e WHERE e.org_id = leads.org_id AND e.list_id = ")
            .push_bind(l)
            .push(")");
    }
    if let Some(s) = f.score_min {
        qb.push(" AND score >= ").push_bind(s);
    }
    if let Some(s) = f.score_max {
        qb.push(" AND score <= ").push_bind(s);
    }
    if let Some(t) = f.created_after {
        qb.push(" AND created_at >= ").push_bind(t);
    }
    if let Some(t) = f.created_before {
        qb.push(" AND created_at < ").push_bind(t);
    }
    match f.has_email {
        Some(true) => {
            qb.push(" AND email_bidx IS NOT NULL");
        }
        Some(false) => {
            qb.push(" AND email_bidx IS NULL");
        }
        None => {}
    }
    match f.email_index {
        Some(Some(idx)) => {
            qb.push(" AND email_bidx = ").push_bind(idx.to_vec());
        }
        Some(None) => {
            qb.push(" AND false");
        }
        None => {}
    }
    if let Some(c) = f.california {
        qb.push(" AND california = ").push_bind(c);
    }
    if for_export && !f.include_do_not_contact {
        qb.push(" AND NOT do_not_contact");
    }
    if for_export && !f.include_do_not_sell {
        qb.push(" AND NOT do_not_sell");
    }
}

/// The keyset condition alone.
pub fn push_keyset(qb: &mut QueryBuilder<'_, Postgres>, page: &Page) {
    if let Some(c) = page.after {
        match page.sort {
            Sort::NewestFirst => {
                qb.push(" AND id < ").push_bind(c.id);
            }
            Sort::OldestFirst => {
                qb.push(" AND id > ").push_bind(c.id);
            }
            Sort::ScoreDesc => {
                qb.push(" AND (score, id) < (")
                    .push_bind(c.score)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            Sort::ScoreAsc => {
                qb.push(" AND (score, id) > (")
                    .push_bind(c.score)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
        }
    }
}

/// The order and the limit (one row more than the page, to know if another page follows).
pub fn push_order(qb: &mut QueryBuilder<'_, Postgres>, page: &Page, extra: u32) {
    qb.push(match page.sort {
        Sort::NewestFirst => " ORDER BY id DESC",
        Sort::OldestFirst => " ORDER BY id ASC",
        Sort::ScoreDesc => " ORDER BY score DESC, id DESC",
        Sort::ScoreAsc => " ORDER BY score ASC, id ASC",
    });
    qb.push(" LIMIT ").push_bind(i64::from(page.limit + extra));
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One search term: a word (prefix match) or a quoted phrase (exact), possibly negated.
#[derive(Debug, PartialEq)]
struct Term {
    words: Vec<String>,
    phrase: bool,
    negated: bool,
}

/// The lexemes of `s` as PostgreSQL's `simple` parser would roughly split them: runs of letters
/// and digits, lower-cased.
fn lexemes(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Turns the user's query into `to_tsquery` text. Terms are ANDed; `OR` between two terms joins
/// them; `-term` excludes; `"a b"` is a phrase. Lexemes contain only letters and digits, so the
/// output cannot carry tsquery operators the user did not mean. `None` when nothing searchable
/// remains (e.g. only punctuation). With it, whether the query matches few leads: some group of
/// alternatives that every match must meet has only rare words in it (an exclusion restricts
/// nothing).
fn text_query(q: &str) -> Result<Option<(String, bool)>, LeadsError> {
    // Tokens: (text, quoted, negated) or the OR operator.
    enum Tok {
        Term(Term),
        Or,
    }
    let mut toks = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let negated = c == '-';
        if negated {
            chars.next();
        }
        let quoted = chars.peek() == Some(&'"');
        let mut raw = String::new();
        if quoted {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                raw.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                raw.push(c);
                chars.next();
            }
        }
        if !quoted && !negated && raw == "OR" {
            toks.push(Tok::Or);
            continue;
        }
        let words = lexemes(&raw);
        if !words.is_empty() {
            toks.push(Tok::Term(Term {
                phrase: quoted || words.len() > 1,
                words,
                negated,
            }));
        }
    }
    // Groups of OR-ed terms, ANDed together.
    let mut groups: Vec<Vec<Term>> = Vec::new();
    let mut join_next = false;
    let mut count = 0;
    for t in toks {
        match t {
            Tok::Or => join_next = !groups.is_empty(),
            Tok::Term(term) => {
                count += 1;
                match groups.last_mut() {
                    Some(g) if join_next => g.push(term),
                    _ => groups.push(vec![term]),
                }
                join_next = false;
            }
        }
    }
    if count > MAX_TERMS {
        return Err(LeadsError::Invalid(format!("q: at most {MAX_TERMS} terms")));
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let rare = {
        let lexicon = COMMON
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Without statistics (a table never analyzed) nothing is known to be rare, and reading
        // every match of a common word first would be far worse than the planner's guess.
        !lexicon.words.is_empty()
            && groups.iter().any(|g| {
                g.iter().all(|t| {
                    !t.negated
                        && if t.phrase {
                            t.words.iter().any(|w| lexicon.frequency(w, false) < RARE)
                        } else {
                            lexicon.frequency(&t.words[0], true) < RARE
                        }
                })
            })
    };
    // A query of exclusions alone would match almost everything; PostgreSQL handles `!a` fine,
    // so it is allowed.
    let render = |t: &Term| {
        let body = if t.phrase {
            t.words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" <-> ")
        } else {
            format!("'{}':*", t.words[0])
        };
        let body = if t.words.len() > 1 {
            format!("({body})")
        } else {
            body
        };
        if t.negated { format!("!{body}") } else { body }
    };
    let out = groups
        .iter()
        .map(|g| {
            let parts: Vec<String> = g.iter().map(render).collect();
            if parts.len() > 1 {
                format!("({})", parts.join(" | "))
            } else {
                parts.join("")
            }
        })
        .collect::<Vec<_>>()
        .join(" & ");
    Ok(Some((out, rare)))
}

/// Below this share of leads a word is rare: reading its matches through the index and sorting
/// them beats walking the newest leads until a page is full.
const RARE: f32 = 0.002;

/// The words PostgreSQL's statistics count as common in lead search vectors, with the share of
/// leads that have each (`pg_stats.most_common_elems` of `app.leads.search`), sorted.
///
/// Why the server looks: under a `LIMIT`, the planner walks the newest leads and filters when it
/// believes a word is common, and reads the full-text index when it believes it rare. For a
/// prefix (every search word is one) and for a small vocabulary it falls back to fixed guesses
/// (2 % and 0.5 %), so a word in 20 leads' notes walked all 900,000 (750 ms). A word absent from
/// this list is rarer than any in it; the search then reads the index first (and sorts), which
/// the planner does once the page's order and limit are outside its subquery.
#[derive(Debug, Default)]
pub struct Lexicon {
    words: Vec<(String, f32)>,
}

impl Lexicon {
    /// The share of leads with word `w`, or (`prefix`) with any word starting with it.
    #[must_use]
    pub fn frequency(&self, w: &str, prefix: bool) -> f32 {
        let start = self.words.partition_point(|(x, _)| x.as_str() < w);
        self.words[start..]
            .iter()
            .take_while(|(x, _)| if prefix { x.starts_with(w) } else { x == w })
            .map(|(_, f)| f)
            .sum()
    }
}

/// This process's copy of the statistics (they only choose a plan: results are the same).
static COMMON: std::sync::RwLock<Lexicon> = std::sync::RwLock::new(Lexicon { words: Vec::new() });

/// Reads the statistics again (at start and every 30 seconds; `ANALYZE`, which autovacuum runs
/// after large changes, refreshes them).
pub async fn refresh_lexicon(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    // Through a definer function: `pg_stats` hides the statistics of a table under RLS.
    let mut words: Vec<(String, f32)> =
        sqlx::query_as("SELECT word, freq FROM app.lead_search_common_words()")
            .fetch_all(pool)
            .await?;
    words.sort_by(|a, b| a.0.cmp(&b.0));
    *COMMON
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Lexicon { words };
    Ok(())
}

/// How many common words the statistics gave this process.
#[must_use]
pub fn common_words() -> usize {
    COMMON
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .words
        .len()
}

/// Keeps [`COMMON`] current until the task is dropped.
pub async fn lexicon_loop(pool: sqlx::PgPool) {
    loop {
        if let Err(e) = refresh_lexicon(&pool).await {
            tracing::warn!(error = %e, "reading the full-text statistics");
        }
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_words_are_those_the_statistics_do_not_count_as_common() {
        let lexicon = Lexicon {
            words: vec![
                ("sales".into(), 0.3),
                ("salesforce".into(), 0.01),
                ("vp".into(), 0.1),
            ],
        };
        assert!((lexicon.frequency("sales", true) - 0.31).abs() < 1e-6);
        assert!((lexicon.frequency("sales", false) - 0.3).abs() < 1e-6);
        assert_eq!(lexicon.frequency("zanzibar", true), 0.0);
        *COMMON.write().unwrap() = Lexicon::default();
        assert!(
            !text_query("zanzibar").unwrap().unwrap().1,
            "no statistics, nothing known rare"
        );
        *COMMON.write().unwrap() = lexicon;
        let rare = |q: &str| text_query(q).unwrap().unwrap().1;
        assert!(!rare("sales"));
        assert!(rare("zanzibar"));
        assert!(
            rare("sales zanzibar"),
            "every match must have the rare word"
        );
        assert!(!rare("sales OR zanzibar"), "an alternative is common");
        assert!(!rare("sales -zanzibar"), "an exclusion restricts nothing");
        assert!(rare("\"vp zanzibar\""), "a phrase with a rare word");
        *COMMON.write().unwrap() = Lexicon::default();
    }

    #[test]
    fn the_query_syntax_users_expect() {
        let t = |q: &str| text_query(q).unwrap().map(|t| t.0);
        assert_eq!(t("acme").as_deref(), Some("'acme':*"));
        assert_eq!(t("Acme VP").as_deref(), Some("'acme':* & 'vp':*"));
        assert_eq!(
            t("\"head of sales\"").as_deref(),
            Some("('head' <-> 'of' <-> 'sales')")
        );
        assert_eq!(t("cto OR ceo").as_deref(), Some("('cto':* | 'ceo':*)"));
        assert_eq!(
            t("acme cto OR ceo -intern").as_deref(),
            Some("'acme':* & ('cto':* | 'ceo':*) & !'intern':*")
        );
        assert_eq!(t("-\"big co\"").as_deref(), Some("!('big' <-> 'co')"));
        // Apostrophes and operators in names cannot inject tsquery syntax.
        assert_eq!(t("O'Brien").as_deref(), Some("('o' <-> 'brien')"));
        assert_eq!(t("a&b|!c:*").as_deref(), Some("('a' <-> 'b' <-> 'c')"));
        assert_eq!(t("  ''  \"\" "), None);
        assert_eq!(
            t("OR acme").as_deref(),
            Some("'acme':*"),
            "a leading OR joins nothing"
        );
        assert_eq!(t("Zoë").as_deref(), Some("'zoë':*"));
        let many = (0..17)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text_query(&many).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            sort: Sort::ScoreDesc,
            score: 42,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not-a-cursor").is_err());
    }
}
