//! Merge fields for campaign subjects and bodies.
//!
//! Campaign authors personalise mail with a deliberately tiny, Liquid-like syntax: a field
//! (`{{ first_name }}`) and an optional fallback (`{{ first_name | default: "there" }}`), and
//! nothing else. No conditions, loops or filters: a template can never run code, loop forever or
//! read anything but the lead fields it names, and every field it names is checked when the
//! author saves it, so a typo is reported with its line and column instead of sending thousands
//! of mails that greet nobody.
//!
//! Field names are `[a-z][a-z0-9_]*` (at most 64 characters) for the lead's own columns, which
//! the caller's `known` callback vouches for, or `custom.<key>` for the free-form custom fields a
//! lead import brings along. A custom key is 1 to 64 ASCII letters, digits, `_`, `-` and spaces,
//! neither starting nor ending with a space (spaces around the name belong to the tag), so
//! `{{ custom.Company Size }}` names the key `Company Size`. Custom fields are always accepted:
//! leads gain new ones with every import.
//!
//! Values are escaped for where they land ([`Escape`]). A tag's default is template text, written
//! by the author: it is inserted as written in HTML (where an editor may already have written
//! `&` as `&amp;`) and plain text, and cleaned of line breaks in headers. HTML bodies are parsed
//! with [`parse_html`], which refuses `<` in a default, so a default can never be markup, and a
//! merge field inside a tag: escaping keeps a value from breaking out of an attribute, but it
//! cannot stop a lead whose "website" is `javascript:…` from becoming a link target.

use std::fmt::Write as _;

/// Longest field name or custom key accepted.
const MAX_NAME: usize = 64;

/// A parsed template, ready to render once per recipient.
#[derive(Clone, Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Field {
        name: String,
        default: Option<String>,
        line: u32,
        column: u32,
    },
}

/// Why a template was refused, with where (1-based line and column, counted in characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct TemplateError {
    /// The merge field concerned, when the error is about one.
    pub field: Option<String>,
    /// Line of the offending tag, from 1.
    pub line: u32,
    /// Column of the offending tag's `{{`, from 1, in characters.
    pub column: u32,
    /// What is wrong, without the position.
    pub message: String,
}

/// How values are escaped when a template is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// HTML body: `&`, `<`, `>`, `"` and `'` in values become character references.
    Html,
    /// Plain-text body: values are inserted as they are.
    Text,
    /// A header such as the subject: line breaks and tabs in values become a single space and
    /// other control characters are dropped, so a value can never start a new header.
    Header,
}

/// Parses `src`, checking every plain field name with `known` (custom fields are always
/// accepted).
pub fn parse(src: &str, known: &dyn Fn(&str) -> bool) -> Result<Template, TemplateError> {
    Parser::new(src).run(known)
}

/// Parses an HTML body like [`parse`], and also refuses a merge field inside a tag (in an
/// attribute such as `href` or `src`, or in a comment), where a lead's value could become a
/// `javascript:` link or an image that tracks the reader.
pub fn parse_html(src: &str, known: &dyn Fn(&str) -> bool) -> Result<Template, TemplateError> {
    let template = parse(src, known)?;
    let mut state = HtmlState::Text;
    for part in &template.parts {
        match part {
            Part::Text(text) => state = state.advance(text),
            Part::Field {
                name,
                default,
                line,
                column,
            } => {
                if default.as_deref().is_some_and(|d| d.contains('<')) {
                    return Err(TemplateError {
                        field: Some(name.clone()),
                        line: *line,
                        column: *column,
                        message: format!(
                            "the default of merge field \"{name}\" cannot contain '<' in HTML"
                        ),
                    });
                }
                if state != HtmlState::Text {
                    return Err(TemplateError {
                        field: Some(name.clone()),
                        line: *line,
                        column: *column,
                        message: format!(
                            "merge field \"{name}\" cannot be used inside an HTML tag"
                        ),
                    });
                }
            }
        }
    }
    Ok(template)
}

impl Template {
    /// The distinct field names used, in order of first use (`custom.` prefix included).
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Field { name, .. } = part
                && !out.contains(&name.as_str())
            {
                out.push(name);
            }
        }
        out
    }

    /// Renders with `value` giving each field's value; a missing or empty value falls back to
    /// the tag's default, else to nothing. Values are escaped as `escape` says; defaults are
    /// only cleaned for headers (see the module documentation).
    pub fn render(&self, value: &dyn Fn(&str) -> Option<String>, escape: Escape) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { name, default, .. } => {
                    match (value(name).filter(|v| !v.is_empty()), default) {
                        (Some(v), _) => push_escaped(&mut out, &v, escape),
                        (None, Some(d)) if escape == Escape::Header => {
                            push_escaped(&mut out, d, escape);
                        }
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => {}
                    }
                }
            }
        }
        out
    }
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Text => out.push_str(value),
        Escape::Html => {
            for c in value.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        }
        Escape::Header => {
            let mut in_break = false;
            for c in value.chars() {
                if matches!(c, '\r' | '\n' | '\t' | '\u{2028}' | '\u{2029}' | '\u{85}') {
                    if !in_break {
                        out.push(' ');
                    }
                    in_break = true;
                    continue;
                }
                in_break = false;
                if !c.is_control() {
                    out.push(c);
                }
            }
        }
    }
}

/// Where a scan of HTML source stands, for [`parse_html`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HtmlState {
    Text,
    /// Right after `<`: a tag only if a letter, `/`, `!` or `?` follows.
    Open,
    Tag,
    Quoted(char),
    Comment,
}

impl HtmlState {
    fn advance(mut self, text: &str) -> HtmlState {
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            self = match self {
                HtmlState::Text if c == '<' => HtmlState::Open,
                HtmlState::Text => HtmlState::Text,
                HtmlState::Open if c == '!' && text[i..].starts_with("!--") => {
                    chars.next();
                    chars.next();
                    HtmlState::Comment
                }
                HtmlState::Open if c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?') => {
                    HtmlState::Tag
                }
                HtmlState::Open if c == '<' => HtmlState::Open,
                HtmlState::Open => HtmlState::Text,
                HtmlState::Tag if c == '>' => HtmlState::Text,
                HtmlState::Tag if c == '"' || c == '\'' => HtmlState::Quoted(c),
                HtmlState::Tag => HtmlState::Tag,
                HtmlState::Quoted(q) if c == q => HtmlState::Tag,
                HtmlState::Quoted(q) => HtmlState::Quoted(q),
                HtmlState::Comment if c == '-' && text[i..].starts_with("-->") => {
                    chars.next();
                    chars.next();
                    HtmlState::Text
                }
                HtmlState::Comment => HtmlState::Comment,
            };
        }
        // A `<` that ended the text is not yet a tag, but a field right after it would be its
        // name: treat it as one.
        if self == HtmlState::Open {
            HtmlState::Tag
        } else {
            self
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    line: u32,
    column: u32,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            src,
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Advances over `n` bytes of text known to be on one line (ASCII here).
    fn skip_str(&mut self, s: &str) {
        for _ in s.chars() {
            self.bump();
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.bump();
        }
    }

    fn run(mut self, known: &dyn Fn(&str) -> bool) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let Some(offset) = rest.find("{{") else {
                if !rest.is_empty() {
                    parts.push(Part::Text(rest.to_owned()));
                }
                break;
            };
            if offset > 0 {
                let text = &rest[..offset];
                parts.push(Part::Text(text.to_owned()));
                self.skip_str(text);
            }
            parts.push(self.tag(known)?);
        }
        Ok(Template { parts })
    }

    /// Parses one tag, the parser standing on its `{{`.
    fn tag(&mut self, known: &dyn Fn(&str) -> bool) -> Result<Part, TemplateError> {
        let (line, column) = (self.line, self.column);
        let err = |field: Option<&str>, message: String| TemplateError {
            field: field.map(str::to_owned),
            line,
            column,
            message,
        };
        let tag_end = match self.src[self.pos + 2..].find("}}") {
            Some(end) => self.pos + 2 + end,
            None => return Err(err(None, "unterminated merge tag (missing \"}}\")".into())),
        };
        self.skip_str("{{");
        self.skip_ws();
        let name = self.name().map_err(|m| err(None, m))?;
        if !name.starts_with("custom.") && !known(&name) {
            return Err(err(Some(&name), format!("unknown merge field \"{name}\"")));
        }
        self.skip_ws();
        let mut default = None;
        if self.peek() == Some('|') {
            self.bump();
            self.skip_ws();
            if !self.src[self.pos..].starts_with("default") {
                return Err(err(
                    Some(&name),
                    format!("merge field \"{name}\": only the \"default\" filter is supported"),
                ));
            }
            self.skip_str("default");
            self.skip_ws();
            if self.bump() != Some(':') {
                return Err(err(
                    Some(&name),
                    format!("merge field \"{name}\": expected ':' after \"default\""),
                ));
            }
            self.skip_ws();
            default = Some(self.quoted().map_err(|m| err(Some(&name), m))?);
            self.skip_ws();
        }
        // The string may have contained "}}", so the tag's end is looked up again.
        if !self.src[self.pos..].starts_with("}}") {
            let what = if self.pos > tag_end {
                "unterminated merge tag (missing \"}}\")".to_owned()
            } else {
                format!("unexpected text in merge tag for \"{name}\" (expected \"}}}}\")")
            };
            return Err(err(Some(&name), what));
        }
        self.skip_str("}}");
        Ok(Part::Field {
            name,
            default,
            line,
            column,
        })
    }

    fn name(&mut self) -> Result<String, String> {
        let rest = &self.src[self.pos..];
        let plain_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let plain = &rest[..plain_len];
        if plain == "custom" && rest[plain_len..].starts_with('.') {
            let key_src = &rest[plain_len + 1..];
            let key_len = key_src
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ')))
                .unwrap_or(key_src.len());
            let key = key_src[..key_len].trim_end_matches(' ');
            if key.is_empty() || key.starts_with(' ') {
                return Err("custom field needs a key after \"custom.\" (letters, digits, '_', '-' or spaces)".into());
            }
            if key.len() > MAX_NAME {
                return Err(format!(
                    "custom field key longer than {MAX_NAME} characters"
                ));
            }
            let name = format!("custom.{key}");
            self.skip_str(&name);
            return Ok(name);
        }
        if !plain.starts_with(|c: char| c.is_ascii_lowercase()) {
            let shown: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '}')
                .collect();
            return Err(if shown.is_empty() {
                "empty merge tag (expected a field name)".into()
            } else {
                format!(
                    "invalid merge field name \"{shown}\" (expected a-z, 0-9 and '_', starting with a letter)"
                )
            });
        }
        if plain.len() > MAX_NAME {
            return Err(format!(
                "merge field name longer than {MAX_NAME} characters"
            ));
        }
        // A name directly followed by a character it may not contain (e.g. `First`) is invalid.
        if let Some(next) = rest[plain_len..].chars().next()
            && !matches!(next, ' ' | '\t' | '\r' | '\n' | '|' | '}')
        {
            let shown: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '}')
                .collect();
            return Err(format!(
                "invalid merge field name \"{shown}\" (expected a-z, 0-9 and '_', starting with a letter)"
            ));
        }
        let name = plain.to_owned();
        self.skip_str(&name);
        Ok(name)
    }

    /// A double-quoted string with `\"` and `\\` escapes.
    fn quoted(&mut self) -> Result<String, String> {
        if self.bump() != Some('"') {
            return Err("default value must be a double-quoted string".into());
        }
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err("unterminated default string".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    Some(c) => {
                        let mut m = String::from("unsupported escape \"\\");
                        let _ = write!(m, "{c}\" in default string (only \\\" and \\\\)");
                        return Err(m);
                    }
                    None => return Err("unterminated default string".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str) -> bool {
        matches!(name, "first_name" | "last_name" | "company" | "website")
    }

    fn vals(name: &str) -> Option<String> {
        match name {
            "first_name" => Some("Ada".into()),
            "company" => Some("<Acme & \"Sons\">".into()),
            "last_name" => Some(String::new()),
            "custom.Company Size" => Some("50-200".into()),
            "custom.evil" => Some("Hi\r\nBcc: x@y.z\u{7}".into()),
            _ => None,
        }
    }

    #[test]
    fn renders_fields_and_defaults() -> Result<(), TemplateError> {
        let t = parse(
            "Hi {{first_name}}, {{ last_name | default: \"friend\" }} {{website|default:\"a \\\"b\\\" \\\\\"}}!",
            &known,
        )?;
        assert_eq!(t.render(&vals, Escape::Text), "Hi Ada, friend a \"b\" \\!");
        assert_eq!(t.fields(), vec!["first_name", "last_name", "website"]);
        Ok(())
    }

    #[test]
    fn missing_without_default_is_empty() -> Result<(), TemplateError> {
        let t = parse("[{{ website }}]", &known)?;
        assert_eq!(t.render(&vals, Escape::Text), "[]");
        Ok(())
    }

    #[test]
    fn escapes_values_not_template_text() -> Result<(), TemplateError> {
        let t = parse("<p>{{ company }} & co</p>", &known)?;
        assert_eq!(
            t.render(&vals, Escape::Html),
            "<p>&lt;Acme &amp; &quot;Sons&quot;&gt; & co</p>"
        );
        let t = parse("{{ website | default: \"Tom &amp; Jerry\" }}", &known)?;
        assert_eq!(t.render(&vals, Escape::Html), "Tom &amp; Jerry");
        let t = parse("{{ website | default: \"a\nb\" }}", &known)?;
        assert_eq!(t.render(&vals, Escape::Header), "a b");
        assert!(parse_html("<p>{{ website | default: \"<b>x</b>\" }}</p>", &known).is_err());
        Ok(())
    }

    #[test]
    fn header_escape_strips_line_breaks() -> Result<(), TemplateError> {
        let t = parse("Re: {{ custom.evil }}", &known)?;
        assert_eq!(t.render(&vals, Escape::Header), "Re: Hi Bcc: x@y.z");
        Ok(())
    }

    #[test]
    fn custom_fields_with_spaces() -> Result<(), TemplateError> {
        let t = parse("{{ custom.Company Size }}|{{custom.Company Size}}", &known)?;
        assert_eq!(t.fields(), vec!["custom.Company Size"]);
        assert_eq!(t.render(&vals, Escape::Text), "50-200|50-200");
        Ok(())
    }

    #[test]
    fn unknown_field_has_position() {
        let e = parse("Hello {{ frist_name }}", &known).err();
        let e = e.map(|e| (e.to_string(), e.field, e.line, e.column));
        assert_eq!(
            e,
            Some((
                "unknown merge field \"frist_name\" at line 1, column 7".to_owned(),
                Some("frist_name".to_owned()),
                1,
                7
            ))
        );
        let e = parse("a\nbé {{x}}", &known).err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((2, 4)));
    }

    #[test]
    fn malformed_tags_are_errors() {
        for (src, col) in [
            ("Hi {{ first_name", 4),
            ("Hi {{ first_name }", 4),
            ("{{ }}", 1),
            ("x {{ First }}", 3),
            ("{{ first-name }}", 1),
            ("{{ first_name | upcase }}", 1),
            ("{{ first_name | default: there }}", 1),
            ("{{ first_name | default: \"x }}", 1),
            ("{{ first_name | default: \"\\n\" }}", 1),
            ("{{ first_name last_name }}", 1),
            ("{{ custom. }}", 1),
            ("{{ custom.a/b }}", 1),
            ("ok }} then {{", 12),
        ] {
            match parse(src, &known) {
                Ok(_) => panic!("{src:?} parsed"),
                Err(e) => assert_eq!((e.line, e.column), (1, col), "{src:?}: {e}"),
            }
        }
    }

    #[test]
    fn default_may_contain_braces() -> Result<(), TemplateError> {
        let t = parse("{{ website | default: \"}}\" }}", &known)?;
        assert_eq!(t.render(&vals, Escape::Text), "}}");
        Ok(())
    }

    #[test]
    fn html_refuses_fields_in_tags() {
        for src in [
            "<a href=\"{{ website }}\">x</a>",
            "<a href='x' title={{ company }}>x</a>",
            "<img src=\"https://x/{{custom.id}}.png\">",
            "<{{ company }}>",
            "<!-- {{ company }} -->",
        ] {
            let e = parse_html(src, &known).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.message.contains("cannot be used inside an HTML tag")
                        && e.field.is_some()),
                "{src}: {e:?}"
            );
        }
        let e = parse_html("<p>\n<a href=\"{{ website }}\">", &known).err();
        assert_eq!(
            e.map(|e| e.to_string()),
            Some(
                "merge field \"website\" cannot be used inside an HTML tag at line 2, column 10"
                    .into()
            )
        );
    }

    #[test]
    fn html_accepts_fields_in_text() -> Result<(), TemplateError> {
        let t = parse_html(
            "<p title=\"a > b\">Hi {{ first_name }}</p><!-- c --> 1 < 2 {{ company }} <a href=\"x\">{{website}}</a>",
            &known,
        )?;
        assert_eq!(t.fields(), vec!["first_name", "company", "website"]);
        Ok(())
    }
}
