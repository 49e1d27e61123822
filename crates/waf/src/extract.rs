//! Splitting a request into the individual values an attacker controls, each with a location
//! (`query.q`, `body.notes`, `body.tags[0]`, `header.user-agent`, `cookie.session`, `path`) that
//! matches and exclusions refer to.
//!
//! Parsers here are deliberately forgiving — a malformed body is inspected as text rather than
//! skipped, because "the parser gave up" must never mean "the WAF looked away".

use crate::Request;
use crate::config::Limits;
use std::borrow::Cow;
use std::fmt::Write as _;

use crate::normalize::{form_decode, lenient_utf8_cow};

/// What part of the request a value came from; some detectors weigh evidence by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// The whole request path (path traversal looks at it as one string).
    Path,
    /// One path segment (the other detectors look at segments).
    PathSegment,
    /// A parameter or JSON key name.
    Name,
    /// A parameter, JSON string, cookie, multipart or XML value.
    Value,
    /// A request header value.
    Header,
    /// An uploaded file's name.
    Filename,
    /// An unstructured text body.
    Text,
}

/// One inspected value. Values borrow from the request wherever they need no decoding, and
/// locations live in one buffer per request ([`Sink::location`]): a request's dozen values then
/// cost no allocation of their own.
#[derive(Debug, Clone)]
pub(crate) struct Field<'r> {
    loc: (u32, u32),
    pub value: Cow<'r, str>,
    pub kind: FieldKind,
}

/// Headers never inspected: credentials (not ours to read), and structural headers the HTTP stack
/// parses itself whose normal values (`*/*;q=0.8`, `"Chromium";v="131"`) look like syntax.
const SKIPPED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "cache-control",
    "pragma",
    "if-none-match",
    "if-match",
    "if-modified-since",
    "if-unmodified-since",
    "etag",
    "range",
    "traceparent",
    "tracestate",
    "x-request-id",
    "upgrade-insecure-requests",
    "priority",
];

fn header_skipped(name: &str) -> bool {
    SKIPPED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
        || name.len() > 4 && name[..4].eq_ignore_ascii_case("sec-")
}

/// Collects fields while enforcing the field-count and byte budgets.
pub(crate) struct Sink<'l, 'r> {
    pub fields: Vec<Field<'r>>,
    locs: String,
    limits: &'l Limits,
    bytes: usize,
    pub truncated: bool,
}

impl<'l, 'r> Sink<'l, 'r> {
    pub fn new(limits: &'l Limits) -> Self {
        Sink {
            fields: Vec::with_capacity(16),
            locs: String::with_capacity(256),
            limits,
            bytes: 0,
            truncated: false,
        }
    }

    /// Where `field` came from: `query.q`, `body.tags[0]`, `header.user-agent`.
    pub fn location(&self, field: &Field<'_>) -> &str {
        self.locs
            .get(field.loc.0 as usize..field.loc.1 as usize)
            .unwrap_or("")
    }

    fn full(&self) -> bool {
        self.fields.len() >= self.limits.max_fields || self.bytes >= self.limits.max_inspected_bytes
    }

    /// Records `value` at the location spelled by `loc`'s parts joined together.
    fn push(&mut self, loc: &[&str], value: Cow<'r, str>, kind: FieldKind) {
        if value.is_empty() {
            return;
        }
        if self.full() {
            self.truncated = true;
            return;
        }
        let room = self.limits.max_inspected_bytes - self.bytes;
        let value = if value.len() > room {
            let mut cut = room;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            self.truncated = true;
            match value {
                Cow::Borrowed(v) => Cow::Borrowed(&v[..cut]),
                Cow::Owned(mut v) => {
                    v.truncate(cut);
                    Cow::Owned(v)
                }
            }
        } else {
            value
        };
        self.bytes += value.len();
        let start = self.locs.len();
        for part in loc {
            self.locs.push_str(part);
        }
        // Locations are bounded by the inspected bytes and field count, far below u32::MAX.
        let span = (
            u32::try_from(start).unwrap_or(u32::MAX),
            u32::try_from(self.locs.len()).unwrap_or(u32::MAX),
        );
        self.fields.push(Field {
            loc: span,
            value,
            kind,
        });
    }

    /// Extracts from `body` read as text. Valid UTF-8 (nearly every body) is borrowed; text that
    /// had to be decoded lives only for this call, so its values are copied once into `self`.
    fn read_text(
        &mut self,
        body: &'r [u8],
        prefix: &str,
        f: for<'t> fn(&'t str, &str, &mut Sink<'l, 't>),
    ) {
        match lenient_utf8_cow(body) {
            Cow::Borrowed(text) => f(text, prefix, self),
            Cow::Owned(text) => {
                let mut sub = Sink {
                    fields: Vec::new(),
                    locs: String::new(),
                    limits: self.limits,
                    bytes: self.bytes,
                    truncated: self.truncated,
                };
                f(&text, prefix, &mut sub);
                self.bytes = sub.bytes;
                self.truncated = sub.truncated;
                for field in &sub.fields {
                    let start = self.locs.len();
                    self.locs.push_str(sub.location(field));
                    self.fields.push(Field {
                        loc: (
                            u32::try_from(start).unwrap_or(u32::MAX),
                            u32::try_from(self.locs.len()).unwrap_or(u32::MAX),
                        ),
                        value: Cow::Owned(field.value.clone().into_owned()),
                        kind: field.kind,
                    });
                }
            }
        }
    }
}

/// Splits `req` into fields.
pub(crate) fn extract<'r>(req: &Request<'r>, sink: &mut Sink<'_, 'r>) {
    extract_path(req.path, sink);
    if let Some(q) = req.query {
        extract_form(q, "query", sink);
    }
    for &(name, value) in req.headers {
        if header_skipped(name) {
            continue;
        }
        if name.eq_ignore_ascii_case("cookie") {
            extract_cookies(value, sink);
        } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
            sink.push(
                &["header.", &name.to_ascii_lowercase()],
                Cow::Borrowed(value),
                FieldKind::Header,
            );
        } else {
            sink.push(&["header.", name], Cow::Borrowed(value), FieldKind::Header);
        }
    }
    if !req.body.is_empty() {
        extract_body(req.content_type, req.body, "body", sink);
    }
}

fn extract_path<'r>(path: &'r str, sink: &mut Sink<'_, 'r>) {
    sink.push(&["path"], Cow::Borrowed(path), FieldKind::Path);
    for seg in path.split('/') {
        // Plain segments (`api`, `v1`, ids) cannot carry an attack; skip them cheaply.
        if seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            continue;
        }
        // Many stacks (and every attacker) treat `+` in a path as a space: `24'union+select`.
        let seg = if seg.contains('+') {
            Cow::Owned(seg.replace('+', " "))
        } else {
            Cow::Borrowed(seg)
        };
        sink.push(&["path"], seg, FieldKind::PathSegment);
    }
}

/// Whether a parameter / key name is ordinary enough that inspecting it is pointless.
fn plain_name(name: &str) -> bool {
    name.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']' | b'@' | b':')
    })
}

fn extract_form<'r>(s: &'r str, prefix: &str, sink: &mut Sink<'_, 'r>) {
    for pair in s.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(raw_name);
        if !plain_name(&name) {
            sink.push(&[prefix, ".", &name], name.clone(), FieldKind::Name);
        }
        sink.push(
            &[prefix, ".", &name],
            form_decode(raw_value),
            FieldKind::Value,
        );
    }
}

fn extract_cookies<'r>(s: &'r str, sink: &mut Sink<'_, 'r>) {
    for pair in s.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !plain_name(name) {
            sink.push(&["cookie.", name], Cow::Borrowed(name), FieldKind::Name);
        }
        sink.push(&["cookie.", name], Cow::Borrowed(value), FieldKind::Value);
    }
}

/// The media type without parameters, lower-cased.
fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_binary(mt: &str) -> bool {
    mt.starts_with("image/")
        || mt.starts_with("audio/")
        || mt.starts_with("video/")
        || mt.starts_with("font/")
        || matches!(
            mt,
            "application/octet-stream"
                | "application/pdf"
                | "application/zip"
                | "application/gzip"
                | "application/x-gzip"
                | "application/x-7z-compressed"
                | "application/vnd.ms-excel"
                | "application/x-tar"
        )
        || mt.starts_with("application/vnd.openxmlformats")
}

fn extract_body<'r>(
    content_type: Option<&str>,
    body: &'r [u8],
    prefix: &str,
    sink: &mut Sink<'_, 'r>,
) {
    let mt = content_type.map(media_type).unwrap_or_default();
    if is_binary(&mt) {
        return;
    }
    match mt.as_str() {
        "application/x-www-form-urlencoded" => {
            sink.read_text(body, prefix, |text, prefix, sink| {
                // An XML document sent as a form (or mislabelled on purpose) is read both ways: the
                // application may well parse it as XML.
                if looks_like_xml(text) {
                    extract_xml(text, prefix, sink);
                }
                extract_form(text, prefix, sink);
            })
        }
        "multipart/form-data" => match content_type.and_then(|ct| param(ct, "boundary")) {
            Some(b) => extract_multipart(body, &b, prefix, sink),
            None => sink.push(&[prefix], lenient_utf8_cow(body), FieldKind::Text),
        },
        "text/csv" => sink.read_text(body, prefix, extract_csv),
        "application/xml" | "text/xml" => sink.read_text(body, prefix, extract_xml),
        m if m == "application/json" || m.ends_with("+json") => {
            use serde::de::DeserializeSeed as _;
            let mut loc = prefix.to_owned();
            let mut de = serde_json::Deserializer::from_slice(body);
            let parsed = JsonWalk {
                loc: &mut loc,
                depth: 0,
                sink,
            }
            .deserialize(&mut de)
            .and_then(|()| de.end());
            // What did not parse is inspected as text, whatever was read before the error.
            if parsed.is_err() {
                sink.push(&[prefix], lenient_utf8_cow(body), FieldKind::Text);
            }
        }
        m if m.ends_with("+xml") => sink.read_text(body, prefix, extract_xml),
        _ => sink.read_text(body, prefix, |text, prefix, sink| {
            if looks_like_xml(text) {
                extract_xml(text, prefix, sink);
            }
            sink.push(&[prefix], Cow::Borrowed(text), FieldKind::Text);
        }),
    }
}

/// An XML declaration at the start of a body, whatever its declared type.
fn looks_like_xml(s: &str) -> bool {
    s.trim_start().starts_with("<?xml")
}

/// A `key=value` parameter of a header like Content-Type or Content-Disposition.
fn param(header: &str, key: &str) -> Option<String> {
    for part in header.split(';').skip(1) {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(key) {
            return Some(v.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// Walks a JSON document as it is parsed, pushing every string (and every key that is not a
/// plain name) with its location; no tree is built. Duplicate keys are all inspected, not only
/// the one a parser would keep.
struct JsonWalk<'s, 'l, 'r> {
    loc: &'s mut String,
    depth: usize,
    sink: &'s mut Sink<'l, 'r>,
}

impl<'r> serde::de::DeserializeSeed<'r> for JsonWalk<'_, '_, 'r> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'r>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > self.sink.limits.max_depth {
            self.sink.truncated = true;
            <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d)?;
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'r> serde::de::Visitor<'r> for JsonWalk<'_, '_, 'r> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'r str) -> Result<(), E> {
        self.sink
            .push(&[self.loc], Cow::Borrowed(v), FieldKind::Value);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.sink
            .push(&[self.loc], Cow::Owned(v.to_owned()), FieldKind::Value);
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.sink.push(&[self.loc], Cow::Owned(v), FieldKind::Value);
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'r>>(self, mut seq: A) -> Result<(), A::Error> {
        let base = self.loc.len();
        let mut i = 0usize;
        loop {
            self.loc.truncate(base);
            // Writing to a String cannot fail.
            let _ = write!(self.loc, "[{i}]");
            let item = JsonWalk {
                loc: &mut *self.loc,
                depth: self.depth + 1,
                sink: &mut *self.sink,
            };
            if seq.next_element_seed(item)?.is_none() {
                break;
            }
            i += 1;
        }
        self.loc.truncate(base);
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'r>>(self, mut map: A) -> Result<(), A::Error> {
        let base = self.loc.len();
        loop {
            self.loc.truncate(base);
            let Some(odd_name) = map.next_key_seed(JsonKey {
                loc: &mut *self.loc,
            })?
            else {
                break;
            };
            if let Some(name) = odd_name {
                self.sink
                    .push(&[self.loc], Cow::Owned(name), FieldKind::Name);
            }
            map.next_value_seed(JsonWalk {
                loc: &mut *self.loc,
                depth: self.depth + 1,
                sink: &mut *self.sink,
            })?;
        }
        self.loc.truncate(base);
        Ok(())
    }
}

/// A key: appended to the location; returned when it is not a plain name (then it is inspected
/// too).
struct JsonKey<'s> {
    loc: &'s mut String,
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonKey<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for JsonKey<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object key")
    }

    fn visit_str<E>(self, k: &str) -> Result<Option<String>, E> {
        self.loc.push('.');
        self.loc.push_str(k);
        Ok((!plain_name(k)).then(|| k.to_owned()))
    }
}

/// Finds `needle` in `hay` from `from` (multipart delimiters; bodies are small so a plain scan is
/// fine).
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn extract_multipart<'r>(body: &'r [u8], boundary: &str, prefix: &str, sink: &mut Sink<'_, 'r>) {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let Some(mut pos) = find(body, delim, 0) else {
        sink.push(&[prefix], lenient_utf8_cow(body), FieldKind::Text);
        return;
    };
    loop {
        let part_start = pos + delim.len();
        if body.get(part_start..part_start + 2) == Some(b"--") {
            break;
        }
        let next = find(body, delim, part_start);
        let part = &body[part_start..next.unwrap_or(body.len())];
        extract_part(part, prefix, sink);
        match next {
            Some(n) => pos = n,
            None => break,
        }
    }
}

fn extract_part<'r>(part: &'r [u8], prefix: &str, sink: &mut Sink<'_, 'r>) {
    // Headers end at the first blank line; accept bare LF as well as CRLF.
    let (head, content) = match find(part, b"\r\n\r\n", 0) {
        Some(i) => (&part[..i], &part[i + 4..]),
        None => match find(part, b"\n\n", 0) {
            Some(i) => (&part[..i], &part[i + 2..]),
            None => (part, &[][..]),
        },
    };
    let content = content
        .strip_suffix(b"\r\n")
        .or_else(|| content.strip_suffix(b"\n"))
        .unwrap_or(content);
    let head = lenient_utf8_cow(head);
    let mut name = String::new();
    let mut filename = None;
    let mut ctype = None;
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("content-disposition") {
            name = param(v, "name").unwrap_or_default();
            filename = param(v, "filename");
        } else if k.trim().eq_ignore_ascii_case("content-type") {
            ctype = Some(v.trim().to_owned());
        }
    }
    let loc = format!("{prefix}.{name}");
    if !plain_name(&name) {
        sink.push(&[&loc], Cow::Owned(name.clone()), FieldKind::Name);
    }
    match filename {
        Some(f) => {
            sink.push(&[&loc, ".filename"], Cow::Owned(f), FieldKind::Filename);
            // Uploaded file contents: only text-like files are worth reading.
            let mt = ctype.as_deref().map(media_type).unwrap_or_default();
            if mt.starts_with("text/") || mt.contains("json") || mt.contains("xml") {
                extract_body(ctype.as_deref(), content, &loc, sink);
            }
        }
        None => match ctype.as_deref() {
            Some(ct) if !media_type(ct).starts_with("text/plain") => {
                extract_body(Some(ct), content, &loc, sink);
            }
            _ => sink.push(&[&loc], lenient_utf8_cow(content), FieldKind::Value),
        },
    }
}

/// CSV import bodies: each cell is a value, located by its column header (`body.Company Name`).
/// Inspecting the whole file as one string would read quotes around `O'Brien` as SQL.
fn extract_csv<'r>(s: &'r str, prefix: &str, sink: &mut Sink<'_, 'r>) {
    let mut header: Vec<String> = Vec::new();
    for (row_idx, line) in s.lines().enumerate() {
        let cells = split_csv_line(line);
        if row_idx == 0 {
            header = cells.clone();
        }
        for (i, cell) in cells.into_iter().enumerate() {
            let col = header.get(i).map_or_else(|| i.to_string(), Clone::clone);
            sink.push(&[prefix, ".", &col], Cow::Owned(cell), FieldKind::Value);
        }
    }
}

/// Splits one CSV line on commas outside double quotes, unquoting cells. Lenient about stray
/// quotes inside unquoted cells (`Toys"R"Us`).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    let mut at_cell_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_cell_start => in_quotes = true,
            '"' if in_quotes => {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else if matches!(chars.peek(), None | Some(',')) {
                    in_quotes = false;
                } else {
                    cur.push('"');
                }
            }
            ',' if !in_quotes => {
                cells.push(std::mem::take(&mut cur));
                at_cell_start = true;
                continue;
            }
            c => cur.push(c),
        }
        at_cell_start = false;
    }
    cells.push(cur);
    cells
}

/// XML bodies: attribute values and text nodes are the values (entities are decoded later by
/// normalisation). Markup itself is the format, not attacker data.
fn extract_xml<'r>(s: &'r str, prefix: &str, sink: &mut Sink<'_, 'r>) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    while i < b.len() {
        if b[i] == b'<' {
            push_xml_text(s, text_start, i, prefix, sink);
            // Inside a tag: collect quoted attribute values.
            let mut j = i + 1;
            while j < b.len() && b[j] != b'>' {
                if b[j] == b'"' || b[j] == b'\'' {
                    let q = b[j];
                    let end = b[j + 1..].iter().position(|&c| c == q).map(|p| p + j + 1);
                    let end = end.unwrap_or(b.len());
                    if let Some(v) = s.get(j + 1..end) {
                        sink.push(&[prefix, ".xml"], Cow::Borrowed(v), FieldKind::Value);
                    }
                    j = end + 1;
                } else {
                    j += 1;
                }
            }
            i = j + 1;
            text_start = i;
        } else {
            i += 1;
        }
    }
    push_xml_text(s, text_start, b.len(), prefix, sink);
}

fn push_xml_text<'r>(s: &'r str, from: usize, to: usize, prefix: &str, sink: &mut Sink<'_, 'r>) {
    if let Some(t) = s.get(from..to.min(s.len())) {
        let t = t.trim();
        if !t.is_empty() {
            sink.push(&[prefix, ".xml"], Cow::Borrowed(t), FieldKind::Value);
        }
    }
}

/// Every value the engine would inspect in `r` (for detector tests over whole corpora).
#[cfg(test)]
pub(crate) fn values_of(r: &crate::eval::OwnedRequest) -> Vec<String> {
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &r.method,
        path: &r.path,
        query: r.query.as_deref(),
        headers: &headers,
        content_type: r.content_type.as_deref(),
        body: &r.body,
    };
    let limits = Limits::default();
    let mut sink = Sink::new(&limits);
    extract(&req, &mut sink);
    sink.fields
        .into_iter()
        .map(|f| f.value.into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(req: &Request<'_>) -> Vec<(String, String)> {
        let limits = Limits::default();
        let mut sink = Sink::new(&limits);
        extract(req, &mut sink);
        sink.fields
            .iter()
            .map(|f| (sink.location(f).to_owned(), f.value.clone().into_owned()))
            .collect()
    }

    fn req<'a>(ct: Option<&'a str>, body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            path: "/api/v1/leads",
            query: None,
            headers: &[],
            content_type: ct,
            body,
        }
    }

    #[test]
    fn json_locations() {
        let f = fields(&req(
            Some("application/json"),
            br#"{"notes": "hi", "tags": ["a", "b"], "x": {"y": "z", "n": 3}, "k<ey": "v"}"#,
        ));
        let locs: Vec<&str> = f.iter().map(|(l, _)| l.as_str()).collect();
        assert!(locs.contains(&"body.notes"));
        assert!(locs.contains(&"body.tags[1]"));
        assert!(locs.contains(&"body.x.y"));
        assert!(f.contains(&("body.k<ey".into(), "k<ey".into())));
    }

    #[test]
    fn json_duplicate_keys_are_all_inspected_and_broken_json_is_text() {
        let f = fields(&req(
            Some("application/json"),
            br#"{"q": "harmless", "q": "1 union select 2", "a": [[["deep"]]]}"#,
        ));
        assert!(f.contains(&("body.q".into(), "harmless".into())));
        assert!(f.contains(&("body.q".into(), "1 union select 2".into())));
        assert!(f.contains(&("body.a[0][0][0]".into(), "deep".into())));
        let f = fields(&req(Some("application/json"), br#"{"q": "x", "r": "#));
        assert!(
            f.iter().any(|(l, v)| l == "body" && v.contains("\"r\"")),
            "{f:?}"
        );
    }

    #[test]
    fn query_headers_cookies() {
        let r = Request {
            method: "GET",
            path: "/api/v1/leads",
            query: Some("q=company%3AAT%26T&title=Head+of+R%26D"),
            headers: &[
                ("User-Agent", "curl/8"),
                ("Authorization", "Bearer x' or 1=1"),
                ("Cookie", "a=1; sid=abc"),
            ],
            content_type: None,
            body: b"",
        };
        let f = fields(&r);
        assert!(f.contains(&("query.q".into(), "company:AT&T".into())));
        assert!(f.contains(&("query.title".into(), "Head of R&D".into())));
        assert!(f.contains(&("header.user-agent".into(), "curl/8".into())));
        assert!(f.contains(&("cookie.sid".into(), "abc".into())));
        assert!(!f.iter().any(|(l, _)| l.contains("authorization")));
    }

    #[test]
    fn multipart_fields_and_binary_files() {
        let body = b"--XB\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG' or 1=1\r\n--XB--\r\n";
        let f = fields(&req(Some("multipart/form-data; boundary=XB"), body));
        assert!(f.contains(&("body.note".into(), "hello".into())));
        assert!(f.contains(&("body.f.filename".into(), "../a.png".into())));
        assert!(!f.iter().any(|(_, v)| v.contains("PNG")));
    }

    #[test]
    fn csv_cells() {
        let f = fields(&req(
            Some("text/csv"),
            b"Name,Company\n\"O'Brien\",\"Toys\"R\"Us\"",
        ));
        assert!(f.contains(&("body.Name".into(), "O'Brien".into())));
        assert!(f.contains(&("body.Company".into(), "Toys\"R\"Us".into())));
    }

    #[test]
    fn limits_truncate() {
        let limits = Limits {
            max_fields: 2,
            ..Limits::default()
        };
        let mut sink = Sink::new(&limits);
        extract(
            &Request {
                method: "GET",
                path: "/",
                query: Some("a=1&b=2&c=3"),
                headers: &[],
                content_type: None,
                body: b"",
            },
            &mut sink,
        );
        assert!(sink.truncated);
        assert_eq!(sink.fields.len(), 2);
    }
}
