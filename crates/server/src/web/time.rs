//! Times as people read them: "3 hours ago" or "in 6 days", with the exact time (UTC) on hover
//! and the machine-readable instant in the `<time>` element's `datetime`.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// A moment shown on a page, relative to when the page was made.
#[derive(Debug, Clone)]
pub struct When {
    iso: String,
    exact: String,
    relative: String,
}

impl When {
    #[must_use]
    pub fn new(t: OffsetDateTime, now: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let exact = t
            .format(format_description!(
                "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
            ))
            .unwrap_or_default();
        let date = t
            .format(format_description!(
                "[day padding:none] [month repr:short] [year]"
            ))
            .unwrap_or_default();
        Self {
            iso: t.format(&Rfc3339).unwrap_or_default(),
            relative: relative(t, now, &date),
            exact,
        }
    }

    #[must_use]
    pub fn relative(&self) -> &str {
        &self.relative
    }
}

fn relative(t: OffsetDateTime, now: OffsetDateTime, date: &str) -> String {
    let secs = (now - t).whole_seconds();
    let (n, future) = if secs < 0 {
        (-secs, true)
    } else {
        (secs, false)
    };
    let unit = |count: i64, one: &str| {
        let s = if count == 1 { "" } else { "s" };
        if future {
            format!("in {count} {one}{s}")
        } else {
            format!("{count} {one}{s} ago")
        }
    };
    match n {
        0..45 => {
            if future {
                "in a moment".into()
            } else {
                "just now".into()
            }
        }
        45..3_600 => unit((n + 30) / 60, "minute"),
        3_600..86_400 => unit((n + 1_800) / 3_600, "hour"),
        86_400..172_800 if !future => "yesterday".into(),
        86_400..172_800 => "tomorrow".into(),
        172_800..2_592_000 => unit((n + 43_200) / 86_400, "day"),
        _ => date.to_string(),
    }
}

/// Renders `<time datetime="…" title="…">…</time>`. Every part is made from the time alone (digits,
/// month names, "ago"), so the element needs no escaping; templates write it with `|safe`.
impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"<time datetime="{}" title="{}">{}</time>"#,
            self.iso, self.exact, self.relative
        )
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::When;

    #[test]
    fn times_read_as_people_read_them() {
        let now = datetime!(2026-12-02 12:00 UTC);
        let cases = [
            (datetime!(2026-12-02 11:59:40 UTC), "just now"),
            (datetime!(2026-12-02 11:59 UTC), "1 minute ago"),
            (datetime!(2026-12-02 11:35 UTC), "25 minutes ago"),
            (datetime!(2026-12-02 09:00 UTC), "3 hours ago"),
            (datetime!(2026-12-01 09:00 UTC), "yesterday"),
            (datetime!(2026-11-25 12:00 UTC), "7 days ago"),
            (datetime!(2026-12-09 12:00 UTC), "in 7 days"),
            (datetime!(2026-12-02 14:00 UTC), "in 2 hours"),
            (datetime!(2026-03-01 08:05 UTC), "1 Mar 2026"),
        ];
        for (t, expected) in cases {
            assert_eq!(When::new(t, now).relative(), expected, "{t}");
        }
        let html = When::new(datetime!(2026-11-30 08:05:09 UTC), now).to_string();
        assert_eq!(
            html,
            r#"<time datetime="2026-11-30T08:05:09Z" title="30 Nov 2026, 08:05 UTC">2 days ago</time>"#
        );
    }
}
