//! Card numbers (PANs) in free text, for the card-data scanning of the Security Policy's PCI
//! section: found by their shape (13 to 19 digits, written together or in the groups printed on
//! cards, split by single spaces or hyphens), the Luhn check digit and the issuers' number
//! ranges; masked to the first six and last four digits, the most PCI DSS allows to show.
//!
//! The three tests together keep false alarms rare in sales data: a phone number or an order
//! number has the wrong length or grouping, fails the check digit nine times in ten, or starts
//! where no card network issues.

/// Card numbers masked by this process since it started. The perimeter's alert loop turns its
/// growth into `pan_masked` events, so the slices that write user data need no handle on the
/// alerts (the counter is process-wide like the metrics registry beside it).
static MASKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts `n` card numbers masked where `place` (a table and column) was written.
pub fn record_masked(place: &'static str, n: usize) {
    if n == 0 {
        return;
    }
    MASKED.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("pci_pans_masked_total", "place" => place).increment(n as u64);
    tracing::warn!(target: "leadgen::pci", place, count = n, "card numbers masked before they were stored");
}

/// How many card numbers this process has masked.
#[must_use]
pub fn masked_total() -> u64 {
    MASKED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Masks the card numbers of `text` where it stands; how many there were.
pub fn mask_in_place(text: &mut String) -> usize {
    let n = find(text).len();
    if let Some(masked) = mask(text) {
        *text = masked;
    }
    n
}

/// Masks the card numbers of every string inside `value`; how many there were.
pub fn mask_json(value: &mut serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => mask_in_place(s),
        serde_json::Value::Array(a) => a.iter_mut().map(mask_json).sum(),
        serde_json::Value::Object(m) => m.values_mut().map(mask_json).sum(),
        _ => 0,
    }
}

/// A card number found in a text: its byte range and its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub network: &'static str,
}

/// The Luhn check (ISO/IEC 7812-1) over ASCII digits.
#[must_use]
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if !i.is_multiple_of(2) {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The network whose issuer ranges hold `digits`, if its lengths allow this many digits.
#[must_use]
pub fn network(digits: &[u8]) -> Option<&'static str> {
    let prefix = |n: usize| -> u32 {
        digits[..n.min(digits.len())]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let len = digits.len();
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    let networks: [(&'static str, bool, &[usize]); 10] = [
        ("visa", p1 == 4, &[13, 16, 19]),
        (
            "mastercard",
            (51..=55).contains(&p2) || (2221..=2720).contains(&p4),
            &[16],
        ),
        ("amex", p2 == 34 || p2 == 37, &[15]),
        (
            "discover",
            p4 == 6011
                || (644..=649).contains(&p3)
                || p2 == 65
                || (622_126..=622_925).contains(&p6),
            &[16, 17, 18, 19],
        ),
        ("jcb", (3528..=3589).contains(&p4), &[16, 17, 18, 19]),
        (
            "diners",
            (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39,
            &[14, 15, 16, 17, 18, 19],
        ),
        ("unionpay", p2 == 62, &[16, 17, 18, 19]),
        (
            "maestro",
            matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761..=6763),
            &[13, 14, 15, 16, 17, 18, 19],
        ),
        ("mir", (2200..=2204).contains(&p4), &[16, 17, 18, 19]),
        ("rupay", matches!(p2, 60 | 81 | 82) || p3 == 508, &[16]),
    ];
    networks
        .iter()
        .find(|(_, matches, lengths)| *matches && lengths.contains(&len))
        .map(|(name, ..)| *name)
}

/// Whether groups of these lengths are a way cards are printed: fours (the last group may be
/// shorter, for 13 to 19 digits), or the 4-6-5 and 4-6-4 of American Express and Diners.
fn printed_grouping(groups: &[usize]) -> bool {
    match groups {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [rest @ .., last] => rest.iter().all(|g| *g == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// Every card number in `text`.
#[must_use]
pub fn find(text: &str) -> Vec<Found> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // A run starts at a digit that does not continue a word or a number.
        let boundary_before = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !b[i].is_ascii_digit() || !boundary_before {
            i += 1;
            continue;
        }
        // The run: digit groups split by one separator, the same one throughout.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut sep: Option<u8> = None;
        let mut j = i;
        loop {
            let start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((start, j));
            let next_is_group = j + 1 < b.len()
                && matches!(b[j], b' ' | b'-')
                && sep.is_none_or(|s| s == b[j])
                && b[j + 1].is_ascii_digit();
            if !next_is_group {
                break;
            }
            sep = Some(b[j]);
            j += 1;
        }
        let end = j;
        let boundary_after = end == b.len() || !(b[end].is_ascii_alphanumeric() || b[end] == b'_');
        if boundary_after {
            // A card number may sit inside a longer run (a card followed by its expiry, say):
            // try every stretch of whole groups, longest first from each start.
            let mut k = 0;
            while k < groups.len() {
                let mut hit = None;
                for l in (k..groups.len()).rev() {
                    let lens: Vec<usize> = groups[k..=l].iter().map(|(s, e)| e - s).collect();
                    let total: usize = lens.iter().sum();
                    if !(13..=19).contains(&total) || !printed_grouping(&lens) {
                        continue;
                    }
                    let digits: Vec<u8> = groups[k..=l]
                        .iter()
                        .flat_map(|(s, e)| b[*s..*e].iter().copied())
                        .collect();
                    if let (true, Some(network)) = (luhn(&digits), network(&digits)) {
                        hit = Some((l, network));
                        break;
                    }
                }
                match hit {
                    Some((l, network)) => {
                        out.push(Found {
                            start: groups[k].0,
                            end: groups[l].1,
                            network,
                        });
                        k = l + 1;
                    }
                    None => k += 1,
                }
            }
        }
        i = end.max(i + 1);
    }
    out
}

/// `text` with every card number masked to its first six and last four digits (separators
/// kept), or `None` when it holds none.
#[must_use]
pub fn mask(text: &str) -> Option<String> {
    let found = find(text);
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in &found {
        out.push_str(&text[at..f.start]);
        let span = &text[f.start..f.end];
        let total = span.bytes().filter(u8::is_ascii_digit).count();
        let mut seen = 0;
        for c in span.chars() {
            if c.is_ascii_digit() {
                seen += 1;
                out.push(if seen <= 6 || seen > total - 4 {
                    c
                } else {
                    '*'
                });
            } else {
                out.push(c);
            }
        }
        at = f.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// A card number found by [`scan`]: where it is, masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub table: String,
    pub column: String,
    /// None for the platform's own tables (vulnerability reports, the early-access list).
    pub org_id: Option<uuid::Uuid>,
    pub row_id: String,
    /// The value's card numbers as first six and last four digits.
    pub masked: Vec<String>,
}

/// How a scanned column holds its text.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    Json,
    TextArray,
}

/// Every column of the organizations' data that people write free text into. Formatted fields
/// (email and phone, which are encrypted; URLs; domains) cannot hold a card number.
const COLUMNS: &[(&str, &str, Shape)] = &[
    ("leads", "first_name", Shape::Text),
    ("leads", "last_name", Shape::Text),
    ("leads", "title", Shape::Text),
    ("leads", "department", Shape::Text),
    ("leads", "company_name", Shape::Text),
    ("leads", "industry", Shape::Text),
    ("leads", "city", Shape::Text),
    ("leads", "region", Shape::Text),
    ("leads", "country", Shape::Text),
    ("leads", "source", Shape::Text),
    ("leads", "tags", Shape::TextArray),
    ("leads", "custom", Shape::Json),
    // A lead's `notes_text` (its notes for search) follows its notes by trigger.
    ("lead_notes", "body", Shape::Text),
    ("lead_activities", "summary", Shape::Text),
    ("subject_requests", "note", Shape::Text),
];

/// Scans every free-text column of every organization for card numbers (`leadgen pci scan`),
/// on a connection that reads them all (the maintenance role); with `fix`, masks them where
/// they stand. Values with fewer than 13 digits are not even read into memory.
pub async fn scan(conn: &mut sqlx::PgConnection, fix: bool) -> Result<Vec<Finding>, sqlx::Error> {
    use sqlx::Row as _;
    let mut out = Vec::new();
    for (table, column, shape) in COLUMNS {
        // The names come from the constant above, never from input.
        let text = match shape {
            Shape::Text => (*column).to_string(),
            Shape::Json => format!("{column}::text"),
            Shape::TextArray => format!("array_to_string({column}, ' ')"),
        };
        let rows = sqlx::query(&format!(
            "SELECT org_id, id, to_jsonb({column})::text AS raw, {text} AS text FROM app.{table}
             WHERE length(regexp_replace({text}, '[^0-9]', '', 'g')) >= 13"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let text: String = r.try_get("text")?;
            let found = find(&text);
            if found.is_empty() {
                continue;
            }
            let masked = found
                .iter()
                .filter_map(|f| mask(&text[f.start..f.end]))
                .collect();
            let (org_id, row_id): (uuid::Uuid, uuid::Uuid) =
                (r.try_get("org_id")?, r.try_get("id")?);
            if fix {
                let raw: String = r.try_get("raw")?;
                let mut value: serde_json::Value =
                    serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
                mask_json(&mut value);
                let update =
                    format!("UPDATE app.{table} SET {column} = $3 WHERE org_id = $1 AND id = $2");
                let q = sqlx::query(&update).bind(org_id).bind(row_id);
                let q = match (shape, value) {
                    (Shape::Text, serde_json::Value::String(t)) => q.bind(t),
                    (Shape::TextArray, serde_json::Value::Array(items)) => q.bind(
                        items
                            .into_iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect::<Vec<_>>(),
                    ),
                    (_, v) => q.bind(v),
                };
                q.execute(&mut *conn).await?;
                record_masked(table, found.len());
            }
            out.push(Finding {
                table: (*table).to_string(),
                column: (*column).to_string(),
                org_id: Some(org_id),
                row_id: row_id.to_string(),
                masked,
            });
        }
    }
    scan_platform(conn, fix, &mut out).await?;
    Ok(out)
}

/// The platform's own free text (vulnerability reports, their notes, the early-access list),
/// reached through the definer functions that are the only way into those tables.
async fn scan_platform(
    conn: &mut sqlx::PgConnection,
    fix: bool,
    out: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT tbl, col, row_id, value FROM app.pci_platform_candidates()")
            .fetch_all(&mut *conn)
            .await?;
    for (table, column, row_id, value) in rows {
        let found = find(&value);
        if found.is_empty() {
            continue;
        }
        let masked = found
            .iter()
            .filter_map(|f| mask(&value[f.start..f.end]))
            .collect();
        if fix && let Some(new) = mask(&value) {
            // False when the row changed since it was read: the next scan looks again.
            let replaced: bool =
                sqlx::query_scalar("SELECT app.pci_platform_mask($1, $2, $3, $4, $5)")
                    .bind(&table)
                    .bind(&column)
                    .bind(&row_id)
                    .bind(&value)
                    .bind(&new)
                    .fetch_one(&mut *conn)
                    .await?;
            if replaced {
                record_masked("platform", found.len());
            }
        }
        out.push(Finding {
            table,
            column,
            org_id: None,
            row_id,
            masked,
        });
    }
    Ok(())
}

/// A card number found in a log file: the file, the line (from 1) and the number masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogFinding {
    pub file: String,
    pub line: usize,
    pub masked: String,
}

/// Scans log files (and the regular files of log directories, not recursing) for card
/// numbers; with `fix`, overwrites each number's digits with `*` in place. A masked number keeps
/// its length, so nothing after it moves and a writer appending to the file at the same time
/// loses nothing. A file that cannot be read is an error naming it.
pub fn scan_logs(paths: &[std::path::PathBuf], fix: bool) -> std::io::Result<Vec<LogFinding>> {
    use std::io::{BufRead as _, Seek as _, Write as _};
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut inside: Vec<_> = std::fs::read_dir(path)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    let mut out = Vec::new();
    for file in files {
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", file.display()));
        let reader = std::io::BufReader::new(std::fs::File::open(&file).map_err(named)?);
        // Byte offsets of each number found, to overwrite after reading.
        let mut patches: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut offset = 0u64;
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(named)?;
            let len = line.len() as u64 + 1;
            // Card numbers are ASCII: every other byte reads as `?`, one byte for one, so
            // offsets in the text are offsets in the file whatever the line's encoding.
            let text: String = line
                .iter()
                .map(|&b| if b.is_ascii() { b as char } else { '?' })
                .collect();
            for f in find(&text) {
                if let Some(m) = mask(&text[f.start..f.end]) {
                    out.push(LogFinding {
                        file: file.display().to_string(),
                        line: n + 1,
                        masked: m.clone(),
                    });
                    patches.push((offset + f.start as u64, m.into_bytes()));
                }
            }
            offset += len;
        }
        if fix && !patches.is_empty() {
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(named)?;
            for (at, bytes) in &patches {
                w.seek(std::io::SeekFrom::Start(*at)).map_err(named)?;
                w.write_all(bytes).map_err(named)?;
            }
            w.sync_all().map_err(named)?;
            record_masked("logs", patches.len());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The networks' published test numbers.
    const CARDS: &[(&str, &str)] = &[
        ("4242424242424242", "visa"),
        ("4000056655665556", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3566002020360505", "jcb"),
        ("30569309025904", "diners"),
        ("6200000000000005", "unionpay"),
    ];

    #[test]
    fn published_test_cards_are_found_with_their_network() {
        for (pan, net) in CARDS {
            let text = format!("card: {pan}.");
            let found = find(&text);
            assert_eq!(found.len(), 1, "{pan}");
            assert_eq!(found[0].network, *net, "{pan}");
            assert_eq!(&text[found[0].start..found[0].end], *pan);
        }
    }

    #[test]
    fn printed_groupings_are_found_and_masked_to_six_and_four() {
        assert_eq!(
            mask("Pay with 4242 4242 4242 4242 please").unwrap(),
            "Pay with 4242 42** **** 4242 please"
        );
        assert_eq!(
            mask("amex 3782-822463-10005, exp 12/27").unwrap(),
            "amex 3782-82****-*0005, exp 12/27"
        );
        assert_eq!(mask("5555555555554444").unwrap(), "555555******4444");
        // A card followed by its expiry year in the same run is still found.
        let t = "4242 4242 4242 4242 2027";
        assert_eq!(mask(t).unwrap(), "4242 42** **** 4242 2027");
        // Two cards in one note.
        let two = mask("old 4000056655665556, new 5555555555554444").unwrap();
        assert_eq!(two, "old 400005******5556, new 555555******4444");
    }

    #[test]
    fn numbers_that_are_not_cards_are_left_alone() {
        for text in [
            "+1 415 555 0100",
            "call 4155550100 or +44 20 7946 0958",
            // The right length and grouping, the wrong check digit.
            "order 4242 4242 4242 4241",
            // A valid check digit but no card network starts with 1 or 9.
            "invoice 1234567812345670",
            "ref 9999999999999995",
            // Part of a word or a longer number.
            "ID4242424242424242",
            "4242424242424242X",
            "42424242424242420000",
            // Mixed separators and odd groupings are not how cards are printed.
            "4242-4242 4242-4242",
            "424 2424 2424 24242",
            "2026-12-03 10:00",
            "0f9c1a4e-5b0d-4b8e-9b3c-2a7d4e6f8a10",
        ] {
            assert!(find(text).is_empty(), "{text}: {:?}", find(text));
            assert_eq!(mask(text), None);
        }
    }

    /// Real exports of CRMs (HubSpot, Apollo, Salesforce: phone numbers, ids, revenues, dates)
    /// hold no card number, and none is reported in them.
    #[test]
    fn crm_exports_raise_no_false_alarm() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/import");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the shared import corpus") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "csv") {
                files += 1;
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                let found: Vec<&str> = find(&text).iter().map(|f| &text[f.start..f.end]).collect();
                assert!(found.is_empty(), "{}: {found:?}", path.display());
            }
        }
        assert!(files >= 3, "the corpus has its three exports");
    }

    #[test]
    fn the_check_digit_is_luhns() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
    }
}
