//! HTML bodies: sanitizing what campaign authors paste in, and the plain-text alternative.
//!
//! Authors paste HTML from editors and other tools; LeadGen sends it from the customer's own
//! domain, so anything active in it (scripts, forms, event handlers, `javascript:` links) would
//! be both a hazard to recipients and a spam signal. [`sanitize`] keeps what email clients
//! render (formatting, tables and their layout attributes, inline styles limited to layout and
//! typography, http(s) images, http(s)/mailto links) and drops the rest, using `ammonia`.
//!
//! Sanitizing happens on the template, before merge fields are filled in, so merge tags in
//! text must come out exactly as they went in. ammonia's serializer leaves the quotes of
//! `{{ first_name | default: "there" }}` alone, but encodes `&` and `>` in a default (and a later
//! version could encode more), so [`sanitize`] restores the source text of each `{{ … }}` region
//! whose sanitized form decodes back to it exactly; a region the sanitizer changed otherwise
//! stays as sanitized.
//!
//! [`to_text`] uses `html2text`, which shares ammonia's `html5ever` parser version, so the
//! pair adds a single HTML parser to the build.

use std::collections::{HashMap, HashSet};

use ammonia::{Builder, UrlRelative};

/// Tags an email body may keep.
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
];

/// Attributes allowed on every kept tag.
const GENERIC_ATTRIBUTES: &[&str] = &["align", "dir", "lang", "style", "title", "valign"];

/// CSS properties kept in `style` attributes: layout and typography, nothing that loads a URL
/// (`background-image`, `content`) or positions content over other content.
const STYLE_PROPERTIES: &[&str] = &[
    "background-color",
    "border",
    "border-bottom",
    "border-collapse",
    "border-color",
    "border-left",
    "border-radius",
    "border-right",
    "border-spacing",
    "border-style",
    "border-top",
    "border-width",
    "color",
    "display",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "height",
    "letter-spacing",
    "line-height",
    "margin",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "margin-top",
    "max-width",
    "min-width",
    "padding",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "padding-top",
    "text-align",
    "text-decoration",
    "text-transform",
    "vertical-align",
    "white-space",
    "width",
];

/// Sanitizes an HTML email body (a template or a rendered mail) for sending.
///
/// Links get `rel="noopener noreferrer"`; relative URLs and any scheme but http/https (and
/// mailto on links) are dropped; merge tags in text are preserved byte for byte.
pub fn sanitize(html: &str) -> String {
    let tag_attributes: HashMap<&str, HashSet<&str>> = [
        ("a", &["href", "name", "target"][..]),
        ("img", &["src", "alt", "width", "height", "border"][..]),
        (
            "table",
            &[
                "width",
                "border",
                "cellpadding",
                "cellspacing",
                "bgcolor",
                "role",
            ][..],
        ),
        (
            "td",
            &["width", "height", "colspan", "rowspan", "bgcolor", "nowrap"][..],
        ),
        (
            "th",
            &[
                "width", "height", "colspan", "rowspan", "bgcolor", "nowrap", "scope",
            ][..],
        ),
        ("tr", &["bgcolor", "height"][..]),
        ("col", &["span", "width"][..]),
        ("colgroup", &["span", "width"][..]),
        ("font", &["color", "face", "size"][..]),
        ("ol", &["start", "type"][..]),
        ("ul", &["type"][..]),
        ("hr", &["width", "size", "noshade"][..]),
        ("blockquote", &["cite"][..]),
        ("q", &["cite"][..]),
    ]
    .into_iter()
    .map(|(tag, attrs)| (tag, attrs.iter().copied().collect()))
    .collect();

    let mut builder = Builder::empty();
    builder
        .tags(TAGS.iter().copied().collect())
        .clean_content_tags(["script", "style", "title", "head", "noscript", "template"].into())
        .generic_attributes(GENERIC_ATTRIBUTES.iter().copied().collect())
        .tag_attributes(tag_attributes)
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        .url_schemes(["http", "https", "mailto"].into())
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| {
            // Images load on opening: only from the web, never `mailto:`. `cite` is not
            // followed by clients, so it is dropped rather than checked.
            match (element, attribute) {
                ("img", "src") if !is_web_url(value) => None,
                (_, "cite") => None,
                _ => Some(value.into()),
            }
        });
    let clean = builder.clean(html).to_string();
    restore_merge_tags(html, &clean)
}

fn is_web_url(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Puts back the source text of merge tags that the serializer re-encoded.
///
/// Each `{{ … }}` region of the output is decoded (character references only) and, if that
/// matches a region of the input exactly, replaced by the input's text. A region that the
/// sanitizer changed in any other way stays as sanitized, so nothing dropped comes back.
fn restore_merge_tags(src: &str, clean: &str) -> String {
    let originals: HashSet<&str> = tag_regions(src).collect();
    if originals.is_empty() {
        return clean.to_owned();
    }
    let mut out = String::with_capacity(clean.len());
    let mut last = 0;
    for region in tag_regions(clean) {
        let start = region.as_ptr() as usize - clean.as_ptr() as usize;
        out.push_str(&clean[last..start]);
        let decoded = decode_entities(region);
        if originals.contains(decoded.as_str()) && decoded != region {
            out.push_str(&decoded);
        } else {
            out.push_str(region);
        }
        last = start + region.len();
    }
    out.push_str(&clean[last..]);
    out
}

/// The `{{ … }}` regions of `s`, shortest match, not spanning another `{{`.
fn tag_regions(s: &str) -> impl Iterator<Item = &str> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        loop {
            let start = pos + s.get(pos..)?.find("{{")?;
            let after = start + 2;
            let end = after + s[after..].find("}}")? + 2;
            match s[after..end].find("{{") {
                Some(inner) => pos = after + inner,
                None => {
                    pos = end;
                    return Some(&s[start..end]);
                }
            }
        }
    })
}

/// Decodes the few character references an HTML serializer writes in text.
fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// A readable plain-text version of an HTML body for the `text/plain` alternative: paragraphs
/// and line breaks kept, links written `text (url)`, list items starting with `- `, no table
/// borders. Lines are not wrapped, so merge tags stay whole for the template parser.
pub fn to_text(html: &str) -> String {
    let config = html2text::config::with_decorator(TextDecorator::default())
        .no_table_borders()
        .no_link_wrapping();
    // A width no line reaches turns wrapping off; html2text only errors on widths too narrow.
    let text = config
        .string_from_read(html.as_bytes(), 100_000)
        .unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Plain decorations for email text: no markers for emphasis, `text (url)` for links, `- `
/// for list items.
#[derive(Clone, Debug, Default)]
struct TextDecorator {
    links: Vec<String>,
}

impl html2text::render::TextDecorator for TextDecorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, url: &str) -> (String, ()) {
        self.links.push(url.to_owned());
        (String::new(), ())
    }

    fn decorate_link_end(&mut self) -> String {
        match self.links.pop() {
            Some(url) if !url.is_empty() => format!(" ({url})"),
            _ => String::new(),
        }
    }

    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_em_end(&self) -> String {
        String::new()
    }

    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_strong_end(&self) -> String {
        String::new()
    }

    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }

    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }

    fn decorate_code_end(&self) -> String {
        String::new()
    }

    fn decorate_preformat_first(&self) {}

    fn decorate_preformat_cont(&self) {}

    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_owned(), ())
    }

    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }

    fn quote_prefix(&self) -> String {
        "> ".to_owned()
    }

    fn unordered_item_prefix(&self) -> String {
        "- ".to_owned()
    }

    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }

    fn make_subblock_decorator(&self) -> Self {
        TextDecorator::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_merge_tags_verbatim() {
        let src = "<p>Hi {{ first_name | default: \"there\" }}, {{ company | default: \"A & B > C\" }} \
                   {{custom.Team Size}}</p>";
        let out = sanitize(src);
        assert_eq!(
            out,
            "<p>Hi {{ first_name | default: \"there\" }}, {{ company | default: \"A & B > C\" }} \
             {{custom.Team Size}}</p>"
        );
    }

    #[test]
    fn strips_active_content() {
        let out = sanitize(
            "<p onclick=\"x()\">a<script>alert(1)</script><style>p{}</style>\
             <iframe src=\"https://e.test\"></iframe><form><input name=q></form>\
             <a href=\"javascript:alert(1)\">j</a><img src=\"data:image/png;base64,AA\">\
             <img src=\"mailto:a@b.c\"><a href=\"/relative\">r</a></p>",
        );
        for bad in [
            "onclick",
            "script",
            "alert",
            "style>",
            "iframe",
            "form",
            "input",
            "data:",
            "mailto",
            "relative\"",
        ] {
            assert!(!out.contains(bad), "{bad} in {out}");
        }
    }

    #[test]
    fn keeps_email_formatting() {
        let out = sanitize(
            "<table width=\"600\" align=\"center\" cellpadding=\"0\"><thead><tr><th>H</th></tr></thead>\
             <tbody><tr><td width=\"50%\" style=\"color: red; background-image: url(https://t.test/x); padding: 4px\">\
             <a href=\"https://example.com/a\" target=\"_blank\">x</a> <a href=\"mailto:a@example.com\">m</a>\
             <img src=\"https://example.com/i.png\" alt=\"i\" width=\"10\"></td></tr></tbody></table>",
        );
        assert!(
            out.contains("<table width=\"600\" align=\"center\" cellpadding=\"0\">"),
            "{out}"
        );
        assert!(out.contains("<thead><tr><th>H</th></tr></thead>"), "{out}");
        assert!(
            out.contains("<td width=\"50%\" style=\"color:red;padding:4px\">"),
            "{out}"
        );
        assert!(
            out.contains("<a href=\"https://example.com/a\" target=\"_blank\" rel=\"noopener noreferrer\">x</a>"),
            "{out}"
        );
        assert!(out.contains("href=\"mailto:a@example.com\""), "{out}");
        assert!(
            out.contains("<img src=\"https://example.com/i.png\" alt=\"i\" width=\"10\">"),
            "{out}"
        );
    }

    #[test]
    fn tags_changed_by_sanitizing_are_not_restored() {
        // The script in the middle is removed; the region no longer matches the source.
        let out = sanitize("<p>{{ a <script>x</script> }}</p>");
        assert_eq!(out, "<p>{{ a  }}</p>");
    }

    #[test]
    fn text_version() {
        let text = to_text(
            "<h1>Hello</h1><p>Hi {{ first_name | default: \"there\" }},<br>line two</p>\
             <p>See <a href=\"https://example.com/x\">our site</a>.</p>\
             <ul><li>one</li><li>two</li></ul><ol><li>first</li></ol>\
             <table><tr><td>cell</td></tr></table>",
        );
        assert_eq!(
            text,
            "Hello\n\nHi {{ first_name | default: \"there\" }},\nline two\n\n\
             See our site (https://example.com/x).\n- one\n- two\n1. first\n\ncell\n"
        );
    }
}
