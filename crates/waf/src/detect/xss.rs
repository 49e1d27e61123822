//! Cross-site scripting: markup and script constructs that make a browser run code.
//!
//! Harmless markup is common in business data ("Wants <b>bold</b> formatting", "Reply to
//! <jane@example.com>"), so a `<` alone means nothing. What matters is markup that executes:
//! script-capable elements (`<script`, `<iframe`, `<svg`, `<object`, `<base`, `<meta`…), event
//! handler attributes (`onload=`), script URLs (`javascript:`, `vbscript:`, HTML `data:` URLs),
//! CSS that runs code (`expression(`, `-moz-binding`) and JavaScript sinks (`alert(`,
//! `document.cookie`, JSFuck). The text has been entity- and URL-decoded already; JavaScript
//! escapes (`\u003c`) are decoded here as a second view.

use super::{CRITICAL, ERROR, Grams, Hits, Input, WARNING, is_word_byte};
use crate::normalize::decode_js_escapes;

/// Elements that execute script or change how the page loads resources.
fn dangerous_tag(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "iframe"
            | "frame"
            | "frameset"
            | "object"
            | "embed"
            | "applet"
            | "base"
            | "meta"
            | "link"
            | "style"
            | "svg"
            | "math"
            | "vmlframe"
            | "import"
            | "isindex"
            | "xml"
            | "xss"
            | "handler"
            | "listener"
            | "animate"
            | "set"
            | "portal"
            | "template"
            | "noscript"
            | "xmp"
            | "plaintext"
            | "bgsound"
            | "layer"
            | "ilayer"
    )
}

/// Elements that are dangerous only in combination (forms submit elsewhere, media load URLs).
fn risky_tag(name: &str) -> bool {
    matches!(
        name,
        "form"
            | "input"
            | "button"
            | "textarea"
            | "keygen"
            | "video"
            | "audio"
            | "source"
            | "img"
            | "image"
            | "body"
            | "html"
            | "marquee"
            | "details"
            | "dialog"
            | "select"
            | "option"
            | "video2"
            | "track"
            | "picture"
            | "a"
            | "div"
            | "table"
            | "td"
    )
}

/// Event handler names browsers fire without user-defined setup. Unknown `on…=` names are still
/// flagged at paranoia 2 (browsers keep adding events).
fn known_event(name: &str) -> bool {
    matches!(
        name,
        "load"
            | "error"
            | "click"
            | "dblclick"
            | "mouseover"
            | "mouseout"
            | "mousedown"
            | "mouseup"
            | "mousemove"
            | "mouseenter"
            | "mouseleave"
            | "focus"
            | "blur"
            | "focusin"
            | "focusout"
            | "change"
            | "submit"
            | "reset"
            | "select"
            | "keydown"
            | "keyup"
            | "keypress"
            | "input"
            | "abort"
            | "beforeunload"
            | "unload"
            | "resize"
            | "scroll"
            | "wheel"
            | "drag"
            | "dragstart"
            | "dragend"
            | "dragover"
            | "dragenter"
            | "dragleave"
            | "drop"
            | "copy"
            | "cut"
            | "paste"
            | "toggle"
            | "animationstart"
            | "animationend"
            | "animationiteration"
            | "transitionend"
            | "transitionstart"
            | "pointerover"
            | "pointerdown"
            | "pointerup"
            | "pointerenter"
            | "pointermove"
            | "touchstart"
            | "touchend"
            | "touchmove"
            | "play"
            | "playing"
            | "pause"
            | "ended"
            | "canplay"
            | "canplaythrough"
            | "loadstart"
            | "loadeddata"
            | "loadedmetadata"
            | "message"
            | "hashchange"
            | "popstate"
            | "pageshow"
            | "pagehide"
            | "show"
            | "begin"
            | "end"
            | "repeat"
            | "search"
            | "start"
            | "finish"
            | "auxclick"
            | "contextmenu"
            | "invalid"
            | "afterprint"
            | "beforeprint"
            | "readystatechange"
            | "selectstart"
            | "selectionchange"
            | "webkitanimationend"
            | "zoom"
            | "online"
            | "offline"
            | "storage"
            | "timeupdate"
            | "volumechange"
            | "waiting"
            | "progress"
            | "durationchange"
            | "emptied"
            | "stalled"
            | "suspend"
            | "seeked"
            | "seeking"
            | "ratechange"
            | "formdata"
            | "beforeinput"
            | "beforetoggle"
            | "cuechange"
            | "gotpointercapture"
            | "lostpointercapture"
            | "securitypolicyviolation"
            | "slotchange"
            | "bounce"
            | "mousewheel"
            | "activate"
            | "beforeactivate"
            | "beforecopy"
            | "beforecut"
            | "beforepaste"
            | "filterchange"
            | "help"
            | "propertychange"
            | "errorupdate"
            | "move"
            | "moveend"
            | "movestart"
    )
}

/// Whether the call spanning `at..end` sits where script runs: at either end of the value, or
/// next to script punctuation rather than between words.
fn script_position(b: &[u8], at: usize, end: usize) -> bool {
    let before = b[..at].iter().rev().find(|c| !c.is_ascii_whitespace());
    let after = b[end.min(b.len())..]
        .iter()
        .find(|c| !c.is_ascii_whitespace());
    let script_byte =
        |c: &u8| !c.is_ascii_alphanumeric() && !matches!(c, b',' | b'.' | b'!' | b'?');
    before.is_none_or(script_byte) || after.is_none_or(script_byte)
}

/// Runs the XSS rules on one value.
pub(crate) fn detect(input: &Input<'_>, hits: &mut Hits) {
    let s = input.text;
    // Nothing here can be markup or script. Emails, URLs without a scheme, phone numbers and
    // dates (`.`, `+`, `-`, `@`) only matter with the words the rules below look for.
    let syntax = input.profile.any_byte(b"<>:=(`[\\");
    let g = &input.profile.grams;
    if !syntax
        && !(g.has(s, "+adw-")
            || g.has(s, "@import")
            || g.has(s, "document")
            || g.has(s, "window")
            || g.has(s, "location")
            || g.has(s, "constructor")
            || g.has(s, "innerhtml"))
    {
        return;
    }
    scan(s, g, hits);
    if let Some(js) = decode_js_escapes(s) {
        scan(&js, &super::Profile::new(&js).grams, hits);
    }
}

fn scan(s: &str, g: &Grams, hits: &mut Hits) {
    let b = s.as_bytes();
    tags(s, hits);
    // A handler is an attribute: `onerror=…`.
    if b.contains(&b'=') {
        event_handlers(b, hits);
    }
    // Every scheme we look for ends in "script" (even when split by whitespace, the letters
    // stay in order), plus `data:` and `mocha:`.
    if s.contains(':')
        && (g.has(s, "script")
            || g.has(s, "data")
            || g.has(s, "mocha")
            || s.bytes().any(|c| c.is_ascii_control()))
    {
        schemes(s, hits);
    }
    if g.has(s, "expression") || g.has(s, "binding") || g.has(s, "behavior") || g.has(s, "@import")
    {
        css(s, g, hits);
    }
    js(s, g, hits);
    // Attribute injection outside a tag: `'formaction=`, `" srcdoc=`.
    let has_eq = b.contains(&b'=');
    for attr in ["formaction", "srcdoc", "xlink:href"]
        .into_iter()
        .filter(|attr| has_eq && g.may_contain(attr))
    {
        if let Some(p) = super::find_from(s, attr, 0) {
            let before = s[..p].trim_end_matches([' ', '\t']);
            let after = s[p + attr.len()..].trim_start();
            if after.starts_with('=') && (before.is_empty() || before.ends_with(['"', '\'', '/'])) {
                hits.add(1, "xss.dangerous_attribute", CRITICAL);
            }
        }
    }
    if g.has(s, "+adw-") {
        // UTF-7 encoded `<`: `+ADw-script+AD4-`.
        hits.add(1, "xss.utf7", CRITICAL);
    }
    if g.has(s, "-->") {
        hits.add(3, "xss.comment_close", ERROR);
    }
    // External entities and processing instructions that pull in code or documents:
    // `<!entity x system "http://…">`, `<?import implementation=…>`, `<?xml-stylesheet …?>`.
    if (g.has(s, "<!entity") && (g.has(s, " system") || g.has(s, " public")))
        || g.has(s, "<?import")
        || g.has(s, "<?xml-stylesheet")
    {
        hits.add(1, "xss.markup_declaration", CRITICAL);
    }
    if g.has(s, "<!") && (g.has(s, "<!--") || g.has(s, "<![cdata[") || g.has(s, "<!entity")) {
        hits.add(2, "xss.markup_declaration", WARNING);
    }
}

/// `<tag …>` analysis: dangerous elements and attributes inside any tag.
fn tags(s: &str, hits: &mut Hits) {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'<') {
        let lt = i + p;
        i = lt + 1;
        let mut j = lt + 1;
        if b.get(j) == Some(&b'/') {
            j += 1;
        }
        // Tag name, with an optional namespace prefix (`<x:script`).
        let name_start = j;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], b':' | b'-' | b'_')) {
            j += 1;
        }
        let full = s.get(name_start..j).unwrap_or("");
        if full.is_empty() || !full.as_bytes()[0].is_ascii_alphabetic() && !full.starts_with(':') {
            // `< x: script`, `<f o r m`: spaced-out tag names (old parser quirks).
            let spaced: String = s
                .get(lt + 1..(lt + 24).min(s.len()))
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == ' ' || *c == ':' || *c == '"')
                .filter(|c| c.is_ascii_alphabetic() || *c == ':')
                .collect();
            let name = spaced.rsplit(':').next().unwrap_or("");
            if name.len() >= 3 && dangerous_tag(name) {
                hits.add(1, "xss.obfuscated_tag", CRITICAL);
            } else if name.len() >= 3 && (risky_tag(name) || known_prefix(name)) {
                hits.add(2, "xss.obfuscated_tag", CRITICAL);
            }
            continue;
        }
        let name = full.rsplit(':').next().unwrap_or(full);
        if name.len() == 1 {
            // `<f o r m`, `<d i a l o g`: a tag name spelled out one letter at a time.
            let letters = spelled_out(b.get(name_start..).unwrap_or(&[]));
            if letters.len() >= 3
                && (dangerous_tag(&letters) || risky_tag(&letters) || known_prefix(&letters))
            {
                hits.add(1, "xss.obfuscated_tag", CRITICAL);
                continue;
            }
        }
        // The rest of the tag up to `>` (or the end of the value: the browser keeps reading).
        let end = b[j..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(b.len(), |e| j + e);
        let attrs = s.get(j..end).unwrap_or("");
        let is_tag_boundary = matches!(
            b.get(j),
            None | Some(b' ' | b'/' | b'>' | b'\t' | b'\n' | b'\r' | 0x0c)
        );
        if !is_tag_boundary {
            continue;
        }
        if dangerous_tag(name) {
            hits.add(1, "xss.dangerous_tag", CRITICAL);
        } else if risky_tag(name) {
            // Plain markup like <b>, <p>, <a href="https://…"> is fine; these need attributes
            // that make them dangerous, which the rules below catch.
            if name != "a" && name != "div" && name != "table" && name != "td" {
                hits.add(3, "xss.html_tag", WARNING);
            }
        }
        if super::has(attrs, "srcdoc") || super::has(attrs, "formaction") {
            hits.add(1, "xss.dangerous_attribute", CRITICAL);
        }
        if super::has(attrs, "srcdoc") || super::has(attrs, "formaction") {
            // (reported above)
        } else if super::has(attrs, "datasrc") || super::has(attrs, "dataformatas") {
            // Legacy data binding: renders fetched content as HTML.
            hits.add(1, "xss.dangerous_attribute", CRITICAL);
        }
        if let Some(p) = super::find_from(attrs, "style", 0) {
            let css = &attrs[p..];
            // Injected markup whose inline style loads resources, runs code or hides its text
            // behind CSS escapes or comments (`style="background:url(…)"`, `\0075\0072\006c`).
            let escaped = css
                .as_bytes()
                .windows(3)
                .any(|w| w[0] == b'\\' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
            if super::has(css, "url(")
                || super::has(css, "expression")
                || super::has(css, "binding")
                || super::has(css, "behavior")
                || super::has(css, "/*")
                || escaped
            {
                hits.add(1, "xss.style_attribute", CRITICAL);
            }
        }
        // Any `on…=` inside a tag is an event handler.
        if has_event_attr(attrs.as_bytes()) {
            hits.add(1, "xss.event_handler", CRITICAL);
        }
        if name == "a" || name == "img" || name == "link" {
            // Generic markup: nothing more to say without script.
        }
    }
}

/// Letters spelled out with single whitespace between them (`f o r m` → `form`); empty when the
/// text does not start that way.
fn spelled_out(b: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_alphabetic() {
            break;
        }
        out.push(char::from(c));
        match (b.get(i + 1), b.get(i + 2)) {
            (Some(b' ' | b'\t'), Some(n)) if n.is_ascii_alphabetic() => i += 2,
            (None | Some(b' ' | b'\t' | b'>' | b'=' | b'/'), _) => break,
            _ => return String::new(),
        }
    }
    out
}

/// Tag-name prefixes of elements that are dangerous but often truncated in probes (`<dial`…).
fn known_prefix(name: &str) -> bool {
    [
        "script", "iframe", "object", "embed", "dialog", "form", "svg",
    ]
    .iter()
    .any(|t| t.starts_with(name) && name.len() >= 3)
}

/// Whether the attribute text of a tag contains an `on<name>=` attribute.
fn has_event_attr(a: &[u8]) -> bool {
    let mut i = 0;
    while i + 2 < a.len() {
        let boundary = i == 0
            || matches!(
                a[i - 1],
                b' ' | b'/' | b'"' | b'\'' | b'\t' | b'\n' | b'\r' | 0x0c | b';'
            );
        if boundary && a[i] == b'o' && a[i + 1] == b'n' {
            let mut j = i + 2;
            while j < a.len() && a[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name_len = j - (i + 2);
            while j < a.len() && matches!(a[j], b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            if name_len >= 3 && a.get(j) == Some(&b'=') {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// `on<event>=` outside a tag: attribute-context injection (`" onmouseover=alert(1) "`).
fn event_handlers(b: &[u8], hits: &mut Hits) {
    let mut i = 0;
    while i + 4 < b.len() {
        if !(b[i] == b'o' && b[i + 1] == b'n') {
            i += 1;
            continue;
        }
        let prev = if i == 0 { b' ' } else { b[i - 1] };
        let boundary = !is_word_byte(prev);
        let quote_before = matches!(prev, b'"' | b'\'' | b'`' | b'/' | b';');
        let mut j = i + 2;
        while j < b.len() && b[j].is_ascii_alphabetic() {
            j += 1;
        }
        let name = std::str::from_utf8(&b[i + 2..j]).unwrap_or("");
        let mut k = j;
        while k < b.len() && matches!(b[k], b' ' | b'\t' | b'\n' | b'\r' | 0x0c) {
            k += 1;
        }
        if boundary && name.len() >= 3 && b.get(k) == Some(&b'=') {
            // What follows `=`: script-like values (`alert(1)`, `eval(…)`) make it certain.
            let value = &b[k + 1..];
            let scripty = value
                .iter()
                .take(64)
                .any(|&c| matches!(c, b'(' | b'`' | b'[' | b'.'));
            // Vendor-prefixed events (`onwebkitanimationend`, `onmozfullscreenchange`) are
            // events too.
            let vendor = name.starts_with("webkit") || name.starts_with("moz");
            if known_event(name) || vendor || quote_before || scripty {
                hits.add(1, "xss.event_handler", CRITICAL);
            } else {
                hits.add(2, "xss.event_handler", CRITICAL);
            }
        }
        i = j.max(i + 1);
    }
}

/// Script-capable URL schemes, tolerating the whitespace and control characters browsers strip
/// inside a scheme (`java\tscript:`).
fn schemes(s: &str, hits: &mut Hits) {
    let compact: String = s
        .chars()
        .filter(|c| !(c.is_ascii_whitespace() || c.is_ascii_control()))
        .collect();
    for scheme in [
        "javascript:",
        "vbscript:",
        "livescript:",
        "mocha:",
        "jscript.encode",
    ] {
        let mut from = 0;
        while let Some(p) = compact
            .get(from..)
            .and_then(|c| super::find_from(c, scheme, 0))
        {
            let at = from + p;
            let after = compact.as_bytes().get(at + scheme.len()).copied();
            // In the original text, "JavaScript: the good parts" has a space after the colon.
            let spaced_in_original = super::find_from(s, scheme, 0)
                .map(|o| s.as_bytes().get(o + scheme.len()) == Some(&b' '));
            // Whitespace or entities *inside* the scheme (`ja&tab;vascript:`) are evasion.
            let obfuscated = spaced_in_original.is_none();
            if obfuscated || (after.is_some() && spaced_in_original != Some(true)) {
                hits.add(1, "xss.script_url", CRITICAL);
            } else {
                hits.add(2, "xss.script_url", CRITICAL);
            }
            from = at + scheme.len();
        }
    }
    if let Some(p) = super::find_from(&compact, "data:", 0) {
        let rest = &compact[p + 5..];
        if rest.starts_with("text/html")
            || rest.starts_with("image/svg")
            || rest.starts_with("text/javascript")
            || rest.starts_with("application/x")
            || rest.starts_with("application/javascript")
            || (rest.starts_with(',') && rest.contains(['<', '(']))
        {
            hits.add(1, "xss.data_url", CRITICAL);
        } else if rest.starts_with(',') || super::has(rest, ";base64,") {
            hits.add(2, "xss.data_url", ERROR);
        }
    }
}

/// CSS that runs code or loads behaviour.
fn css(s: &str, g: &Grams, hits: &mut Hits) {
    if let Some(p) = super::find_from(s, "expression", 0) {
        let after = s[p + 10..].trim_start_matches([' ', '\t', '\n', '\r']);
        let before = s[..p].trim_end();
        // `expression\28…`: the parenthesis as a CSS escape.
        let paren =
            after.starts_with('(') || after.starts_with("\\28") || after.starts_with("\\0028");
        if paren
            && (before.ends_with(':') || before.ends_with('=') || !s[p + 10..].starts_with(' '))
        {
            hits.add(1, "xss.css_expression", CRITICAL);
        }
    }
    if g.has(s, "-moz-binding") || (g.has(s, "behavior") && g.has(s, "url(")) {
        hits.add(1, "xss.css_behaviour", CRITICAL);
    }
    if g.has(s, "@import") && (g.has(s, "url(") || s.contains('\'') || s.contains('"')) {
        hits.add(1, "xss.css_import", CRITICAL);
    }
}

/// JavaScript execution sinks and obfuscation.
fn js(s: &str, g: &Grams, hits: &mut Hits) {
    let b = s.as_bytes();
    // Calls of functions that only matter to an attacker: alert(1), eval(…), setTimeout(…).
    const SINKS: [&str; 14] = [
        "alert",
        "prompt",
        "confirm",
        "eval",
        "settimeout",
        "setinterval",
        "atob",
        "btoa",
        "fromcharcode",
        "execscript",
        "getscript",
        "globaleval",
        "msgbox",
        "import",
    ];
    // Every sink is a call: `(` or a tagged template.
    let callable = b.iter().any(|&c| c == b'(' || c == b'`');
    for sink in SINKS
        .into_iter()
        .filter(|sink| callable && g.may_contain(sink))
    {
        let mut from = 0;
        while let Some(p) = s.get(from..).and_then(|h| super::find_from(h, sink, 0)) {
            let at = from + p;
            let end = at + sink.len();
            from = end;
            if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
                continue;
            }
            let mut k = end;
            let tight = matches!(b.get(k), Some(b'(' | b'`'));
            while k < b.len() && matches!(b[k], b' ' | b'\t' | b'\n' | b'\r') {
                k += 1;
            }
            if sink == "import" {
                if tight
                    && b.get(k + 1)
                        .is_some_and(|c| matches!(c, b'"' | b'\'' | b'`'))
                {
                    hits.add(1, "xss.js_sink", CRITICAL);
                }
                continue;
            }
            // `alert()` with nothing to call it with, between words ("the alert() popups"), is
            // a mention; an attack's empty call still sits in script (`;alert()//`, `=alert()`).
            let empty_call = b.get(end) == Some(&b'(') && b.get(end + 1) == Some(&b')');
            if empty_call && !script_position(b, at, end + 2) {
                continue;
            }
            if tight {
                hits.add(1, "xss.js_sink", CRITICAL);
            } else if b.get(k) == Some(&b'(') {
                hits.add(2, "xss.js_sink", CRITICAL);
            } else if matches!(b.get(k), Some(b'"' | b'\'' | b']'))
                && at > 0
                && matches!(b[at - 1], b'"' | b'\'')
            {
                // self["alert"](…)
                hits.add(1, "xss.js_sink", CRITICAL);
            }
        }
    }
    if let Some(p) = g
        .may_contain("function")
        .then(|| super::find_from(s, "function", 0))
        .flatten()
    {
        let before = s[..p].trim_end();
        if before.ends_with("new") && s[p + 8..].trim_start().starts_with('(') {
            hits.add(1, "xss.js_sink", CRITICAL);
        }
    }
    // Property chains with whitespace and comments removed: document /*x*/ . cookie
    // Every pattern below has a `.`, `[` or `=` in it.
    // Each pattern continues its object's name with punctuation, so only a name that ends
    // there counts: "Windows NT" in a User-Agent names no `window`.
    let chained = s.bytes().any(|c| matches!(c, b'.' | b'[' | b'='));
    let name = |w: &str| g.may_contain(w) && ends_a_name(s, w);
    if chained
        && (name("document")
            || name("window")
            || (s.contains('[')
                && (name("self") || name("top") || name("parent") || name("globalthis")))
            || name("location")
            || name("constructor")
            || name("innerhtml"))
    {
        let compact = strip_js_noise(s);
        for pat in [
            "document.cookie",
            "document.domain",
            "document.write",
            "document.location",
            "document[",
            "(document)[",
            "window.location",
            "window[",
            "self[",
            "top[",
            "parent[",
            "globalthis[",
            "location.hash",
            "location.href=",
            "location=",
            "constructor.constructor",
            ".constructor(",
            ".innerhtml=",
            ".outerhtml=",
            "document.createelement(",
        ] {
            if let Some(p) = super::find_from(&compact, pat, 0) {
                let prev = p
                    .checked_sub(1)
                    .and_then(|q| compact.as_bytes().get(q))
                    .copied();
                if prev.is_none_or(|c| {
                    !c.is_ascii_alphanumeric() || pat.starts_with('.') || pat.starts_with('(')
                }) {
                    hits.add(1, "xss.dom_access", CRITICAL);
                    break;
                }
            }
        }
    }
    // JSFuck / non-alphanumeric JavaScript.
    if !g.has(s, "[]") {
        return;
    }
    let fuck = count(s, "![]") + count(s, "+[]") + count(s, "[]+") + count(s, "[][");
    if fuck >= 2 {
        hits.add(1, "xss.jsfuck", CRITICAL);
    } else if fuck == 1 && (g.has(s, "!![]") || g.has(s, "+!")) {
        hits.add(2, "xss.jsfuck", CRITICAL);
    }
}

fn count(s: &str, pat: &str) -> usize {
    s.matches(pat).count()
}

/// Removes whitespace and `/* … */` comments, which JavaScript ignores between tokens.
/// Whether `word` occurs in `s` not followed by a name byte (`window.`, `window [`, `window`
/// at the end), as opposed to only inside longer names (`windows`, `documents`).
fn ends_a_name(s: &str, word: &str) -> bool {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = super::find_from(s, word, from) {
        let end = p + word.len();
        if b.get(end).is_none_or(|&c| !is_word_byte(c)) {
            return true;
        }
        from = p + 1;
    }
    false
}

fn strip_js_noise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = super::find_from(rest, "/*", 0) {
        out.extend(rest[..p].chars().filter(|c| !c.is_whitespace()));
        match super::find_from(&rest[p + 2..], "*/", 0) {
            Some(e) => rest = &rest[p + 2 + e + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.extend(rest.chars().filter(|c| !c.is_whitespace()));
    out.retain(|c| c != '"' && c != '\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::FieldKind;

    fn score(s: &str, pl: u8) -> u32 {
        let mut hits = Hits::new(pl);
        let n = crate::normalize::normalize(s, 3);
        detect(
            &Input {
                text: &n.text,
                had_null: n.had_null,
                kind: FieldKind::Value,
                profile: &super::super::Profile::new(&n.text),
            },
            &mut hits,
        );
        hits.list.iter().map(|h| h.score).sum()
    }

    #[test]
    fn attacks() {
        for a in [
            "<div style=\"background:url(test5.svg)\">press enter</div>",
            "<div style=\"background-image:\\0075\\0072\\006c\\0028'x')\">",
            "<span datasrc=#i datafld=c dataformatas=html></span>",
            "<!doctype x[<!entity x system \"http://evil.example/x\">]><y>&x;</y>",
            "<?import namespace=\"t\" implementation=\"#default#time2\">",
            "foo<f o r m",
            "$<d i a l o g",
            "  onwebkitplaybacktargetavailabilitychanged= =x",
            "<script>alert(1)</script>",
            "<svg/onload=alert(1)>",
            "<img src=x onerror=alert(1)>",
            "\" onmouseover=\"alert(1)",
            "javascript:alert(document.cookie)",
            "ja&#x09;vascript:alert(1)",
            "<iframe srcdoc=\"&lt;script&gt;\">",
            "<a href=\"javascript&colon;alert(1)\">x</a>",
            "%3Cscript%3Ealert(1)%3C/script%3E",
            "\\u003cscript\\u003e",
            "<div style=\"width: expression(alert(1))\">",
            "data:text/html;base64,PHNjcmlwdD4=",
            "<x:script xmlns:x=\"http://www.w3.org/1999/xhtml\">",
            "document /*x*/ . cookie",
        ] {
            assert!(score(a, 1) >= 5, "missed {a:?}");
        }
    }

    #[test]
    fn business_text() {
        for b in [
            "Grades: <a b c> in order",
            "Use the style guide (url(s) in the footer)",
            "Said their script tag manager blocks onload popups",
            "Wants <b>bold</b> formatting in notes",
            "Reply to <jane.doe+1@example.co.uk> not the shared inbox",
            "JavaScript Engineer",
            "Intro via Jane (jane@partner.io) -> warm lead",
            "Set an alert for Monday",
            "Q: can we import from HubSpot? A: yes, CSV",
            "I <3 <3 the doctor",
            "BLAH <A HREF=\"FOO.HTML\">FOO</A>",
            "https://select.example.com/?utm_source=linkedin&utm_medium=cpc",
        ] {
            assert!(score(b, 1) < 5, "false positive {b:?}: {}", score(b, 1));
        }
    }
}
