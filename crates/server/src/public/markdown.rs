//! Markdown for the public pages (the security claims, the privacy policy and the terms).
//!
//! The operator writes the privacy policy and the terms; the claims file is ours. Either way the
//! Markdown becomes HTML that can carry nothing active: raw HTML in the source is shown as text,
//! and a link or image whose address is not `https:`, `http:`, `mailto:` or relative becomes
//! plain text, so a `javascript:` link cannot reach a visitor.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

fn safe_url(dest: &str) -> bool {
    let lower = dest.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon after a slash, `?` or `#` is part of a relative path, query or fragment.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "https" | "http" | "mailto")
        }
        _ => true,
    }
}

/// Renders `source` to HTML (tables and strikethrough on; raw HTML and unsafe links as text).
#[must_use]
pub fn to_html(source: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut dropped_links = 0usize;
    let mut events = Vec::new();
    for event in Parser::new_ext(source, options) {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => events.push(Event::Text(raw)),
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. })
                if !safe_url(&dest_url) =>
            {
                dropped_links += 1;
            }
            Event::End(TagEnd::Link | TagEnd::Image) if dropped_links > 0 => {
                dropped_links -= 1;
            }
            Event::Start(Tag::Link {
                link_type: LinkType::Email,
                dest_url,
                title,
                id,
            }) => events.push(Event::Start(Tag::Link {
                link_type: LinkType::Email,
                dest_url: CowStr::from(format!(
                    "mailto:{}",
                    dest_url.trim_start_matches("mailto:")
                )),
                title,
                id,
            })),
            other => events.push(other),
        }
    }
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// Renders one line of Markdown without the paragraph around it (a table cell).
#[must_use]
pub fn inline_html(source: &str) -> String {
    let html = to_html(source);
    let trimmed = html.trim_end();
    trimmed
        .strip_prefix("<p>")
        .and_then(|s| s.strip_suffix("</p>"))
        .unwrap_or(trimmed)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_and_script_links_become_text() {
        let html = to_html(
            "Hello <script>alert(1)</script> *there*\n\n[click](javascript:alert(1)) \
             [ok](/privacy) [mail](mailto:dpo@example.com)\n\n<iframe src=x></iframe>\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<iframe"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("click"), "{html}");
        assert!(html.contains(r#"<a href="/privacy">ok</a>"#), "{html}");
        assert!(html.contains(r#"href="mailto:dpo@example.com""#), "{html}");
        assert!(html.contains("<em>there</em>"), "{html}");
    }

    #[test]
    fn a_cell_renders_without_its_paragraph() {
        assert_eq!(
            inline_html("`it::vdp::report` and **more**"),
            "<code>it::vdp::report</code> and <strong>more</strong>"
        );
        assert!(!safe_url(" JavaScript:alert(1)"));
        assert!(safe_url("/a:b") && safe_url("#x:y") && safe_url("https://x"));
    }
}
