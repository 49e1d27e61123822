//! SQL injection: a small SQL tokenizer plus structural rules over the token stream.
//!
//! Keyword lists alone cannot tell "Select Medical" or "drop me a line; select the best option"
//! from an attack; structure can. An injection has to *break out* of the literal the application
//! put it in (a quoted string or a number) and then continue as valid SQL: an operator and an
//! operand (`' or 1=1`), a clause (`' union select`), a comment that cuts the rest of the query
//! (`admin'--`) or a new statement (`1; drop table users`). English almost never does that:
//! after "O'" comes "Brien", not an operator.
//!
//! So each value is tokenized three times — as if it were inserted bare (a number context),
//! inside single quotes and inside double quotes — and the rules look for a breakout followed by a
//! well-formed SQL continuation, plus a few constructs that are SQL wherever they appear
//! (`union select`, `information_schema`, `sleep(`, `/*!` versioned comments, `select … from`).

use super::{CRITICAL, ERROR, Hits, Input, NOTICE, WARNING};

/// One SQL token. Words keep their text (already lower-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// The part of a quoted value before the quote that closes the application's string literal.
    /// `spaced` records whether it contained whitespace (a single token like `admin` is a
    /// likelier target of `admin'--` than prose).
    Prefix {
        spaced: bool,
        escaped: bool,
        empty: bool,
        /// One word, possibly followed by spaces (`a '`).
        one_word: bool,
    },
    Word(&'a str),
    Num {
        hex: bool,
        len: usize,
    },
    /// `lone`: an unterminated string that is only the quote character (a trailing `"`).
    Str {
        closed: bool,
        lone: bool,
        /// Unclosed, and its content is at most 3 non-space characters (`'b`, `'`): the shape of
        /// a breakout that leaves the application's closing quote to balance it.
        short: bool,
    },
    /// Backtick- or bracket-quoted identifier.
    QIdent,
    Op(&'a str),
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    /// `--`, `#` or an unterminated `/*`: the rest of the query is cut off.
    Comment,
    /// `@var` or `@@var` (`system` set for `@@`).
    Var {
        system: bool,
    },
    Other,
}

/// Facts gathered while tokenizing that rules use directly.
#[derive(Default)]
struct Lex {
    /// A MySQL executable comment `/*!…*/` was seen.
    versioned_comment: bool,
    /// A number with an exponent marker and no exponent was glued to a bracket or comma
    /// (`1.e(`, `1.e,`): MySQL reads `1.e` as the number 1, so the marker hides the bracket from
    /// filters that look for a keyword or a bracket after a space.
    bare_exponent: bool,
    /// Closed inline comments `/**/` were seen (whitespace evasion).
    inline_comments: u32,
    /// Words (runs of letters) after the comment that ended the last tokenization, if any.
    comment_tail_words: Option<usize>,
}

fn words_in(rest: &[u8]) -> usize {
    rest.split(|c| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 2)
        .count()
}

const MAX_TOKENS: usize = 512;

/// Tokenizes `s`. With `quote` set, the text up to the first `quote` byte is the application's
/// string literal and becomes a single `Prefix` token.
fn tokenize<'a>(s: &'a str, quote: Option<u8>, toks: &mut Vec<Tok<'a>>, lex: &mut Lex) {
    toks.clear();
    lex.comment_tail_words = None;
    let b = s.as_bytes();
    let mut i = 0;
    if let Some(q) = quote {
        let Some(p) = b.iter().position(|&c| c == q) else {
            return;
        };
        toks.push(Tok::Prefix {
            spaced: b[..p].iter().any(u8::is_ascii_whitespace),
            // `\'or'1`: the attacker tries to escape the application's escaping.
            escaped: p > 0 && b[p - 1] == b'\\',
            empty: p == 0,
            one_word: !b[..p].trim_ascii().iter().any(u8::is_ascii_whitespace),
        });
        i = p + 1;
    }
    let mut in_versioned = false;
    while i < b.len() && toks.len() < MAX_TOKENS {
        let c = b[i];
        // Spaces and words are most of any value: take them before the full dispatch below
        // (whose guarded arms the compiler tests one after another).
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0) {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            i += 1;
            while i < b.len() && (super::is_word_byte(b[i]) || b[i] == b'$') {
                i += 1;
            }
            toks.push(Tok::Word(s.get(start..i).unwrap_or("")));
            continue;
        }
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 => i += 1,
            b'\'' | b'"' => {
                // SQL string: ends at the next unescaped same quote; '' is an escaped quote.
                let mut j = i + 1;
                let mut closed = false;
                while j < b.len() {
                    if b[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if b[j] == c {
                        if b.get(j + 1) == Some(&c) {
                            j += 2;
                            continue;
                        }
                        closed = true;
                        j += 1;
                        break;
                    }
                    j += 1;
                }
                let content = b.get(i + 1..j.min(b.len())).unwrap_or(&[]);
                let trimmed = content.trim_ascii();
                toks.push(Tok::Str {
                    closed,
                    lone: !closed && j >= b.len() && i + 1 >= b.len(),
                    short: !closed
                        && trimmed.len() <= 3
                        && !trimmed.iter().any(u8::is_ascii_whitespace),
                });
                i = j.min(b.len());
            }
            b'`' => {
                let end = b[i + 1..].iter().position(|&x| x == b'`');
                toks.push(Tok::QIdent);
                i = end.map_or(b.len(), |e| i + 1 + e + 1);
            }
            b'[' => {
                // MSSQL [identifier] when it looks like one; otherwise just punctuation.
                match b[i + 1..].iter().position(|&x| x == b']') {
                    Some(e)
                        if e > 0
                            && b[i + 1..i + 1 + e]
                                .iter()
                                .all(|&x| super::is_word_byte(x) || x == b' ') =>
                    {
                        toks.push(Tok::QIdent);
                        i += e + 2;
                    }
                    _ => {
                        toks.push(Tok::Other);
                        i += 1;
                    }
                }
            }
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b';' => {
                toks.push(Tok::Semi);
                i += 1;
            }
            b'#' | b'-' if c == b'#' || b.get(i + 1) == Some(&b'-') => {
                // Line comments end at a newline (`-1#x\nunion select …`); without one they cut
                // off the rest of the query.
                toks.push(Tok::Comment);
                let rest = b.get(i + 1..).unwrap_or(&[]);
                lex.comment_tail_words = Some(words_in(rest));
                match rest.iter().position(|&x| x == b'\n') {
                    Some(nl) => i += 1 + nl,
                    None => return,
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                if b.get(i + 2) == Some(&b'!') {
                    // MySQL executes the body of /*!50000 … */: tokenize it as code.
                    lex.versioned_comment = true;
                    in_versioned = true;
                    i += 3;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                match s.get(i + 2..).and_then(|r| super::find_from(r, "*/", 0)) {
                    Some(e) => {
                        lex.inline_comments += 1;
                        i += 2 + e + 2;
                    }
                    None => {
                        toks.push(Tok::Comment);
                        lex.comment_tail_words = Some(words_in(b.get(i + 2..).unwrap_or(&[])));
                        return;
                    }
                }
            }
            b'*' if in_versioned && b.get(i + 1) == Some(&b'/') => {
                in_versioned = false;
                i += 2;
            }
            // PostgreSQL's JSON containment `@>`.
            b'@' if b.get(i + 1) == Some(&b'>') => {
                toks.push(Tok::Op("@>"));
                i += 2;
            }
            b'@' => {
                let system = b.get(i + 1) == Some(&b'@');
                let mut j = i + if system { 2 } else { 1 };
                let start = j;
                while j < b.len() && (super::is_word_byte(b[j]) || b[j] == b'$') {
                    j += 1;
                }
                if j == start && !system {
                    toks.push(Tok::Other);
                } else {
                    toks.push(Tok::Var { system });
                }
                i = j.max(i + 1);
            }
            b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                toks.push(Tok::Dot);
                i += 1;
            }
            b'0'..=b'9' | b'.' => {
                let start = i;
                let mut hex = false;
                if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'b')) {
                    let is_hex = b[i + 1] == b'x';
                    let mut j = i + 2;
                    while j < b.len()
                        && (if is_hex {
                            b[j].is_ascii_hexdigit()
                        } else {
                            b[j] == b'0' || b[j] == b'1'
                        })
                    {
                        j += 1;
                    }
                    if j > i + 2 && !b.get(j).is_some_and(|&x| super::is_word_byte(x)) {
                        toks.push(Tok::Num {
                            hex: true,
                            len: j - start,
                        });
                        i = j;
                        continue;
                    }
                    hex = false;
                }
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                    j += 1;
                }
                if j < b.len()
                    && b[j] == b'e'
                    && b.get(j + 1)
                        .is_some_and(|x| x.is_ascii_digit() || *x == b'-' || *x == b'+')
                {
                    j += 2;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if b.get(j) == Some(&b'e')
                    && j > start
                    && b[j - 1] == b'.'
                    && matches!(b.get(j + 1), Some(b'(' | b')' | b','))
                {
                    lex.bare_exponent = true;
                    toks.push(Tok::Num {
                        hex,
                        len: j - start,
                    });
                    i = j + 1;
                    continue;
                }
                if j < b.len() && super::is_word_byte(b[j]) {
                    // "5pm", "70s", "2nd": a word, not a number.
                    while j < b.len() && (super::is_word_byte(b[j]) || b[j] == b'$') {
                        j += 1;
                    }
                    toks.push(Tok::Word(s.get(start..j).unwrap_or("")));
                } else {
                    toks.push(Tok::Num {
                        hex,
                        len: j - start,
                    });
                }
                i = j;
            }
            c if super::is_word_byte(c) || c == b'$' => {
                let start = i;
                let mut j = i;
                while j < b.len() && (super::is_word_byte(b[j]) || b[j] == b'$') {
                    j += 1;
                }
                toks.push(Tok::Word(s.get(start..j).unwrap_or("")));
                i = j;
            }
            b'=' | b'<' | b'>' | b'!' | b'|' | b'&' | b'^' | b'~' | b'+' | b'-' | b'*' | b'/'
            | b'%' | b':' => {
                const MULTI: [&str; 15] = [
                    "<=>", "<=", ">=", "<>", "!=", "||", "&&", "::", ":=", "<<", ">>", "==", "->>",
                    "->", "<@",
                ];
                let rest = s.get(i..).unwrap_or("");
                let op = MULTI
                    .iter()
                    .find(|m| rest.starts_with(**m))
                    .copied()
                    .unwrap_or_else(|| s.get(i..i + 1).unwrap_or(""));
                toks.push(Tok::Op(op));
                i += op.len().max(1);
            }
            _ => {
                toks.push(Tok::Other);
                // Skip a whole UTF-8 character.
                i += 1;
                while i < b.len() && b[i] & 0xC0 == 0x80 {
                    i += 1;
                }
            }
        }
    }
}

fn is_logic(t: Tok<'_>) -> bool {
    matches!(t, Tok::Word("or" | "and" | "xor") | Tok::Op("||" | "&&"))
}

fn is_cmp_op(op: &str) -> bool {
    matches!(
        op,
        "=" | "<" | ">" | "<=" | ">=" | "<>" | "!=" | "<=>" | "==" | "@>" | "<@"
    )
}

fn is_cmp_word(w: &str) -> bool {
    matches!(
        w,
        "like"
            | "rlike"
            | "regexp"
            | "ilike"
            | "glob"
            | "sounds"
            | "between"
            | "is"
            | "in"
            | "similar"
            | "match"
            | "notnull"
            | "isnull"
    )
}

/// Words that end an expression because a new clause starts.
fn is_clause(w: &str) -> bool {
    matches!(
        w,
        "union"
            | "order"
            | "group"
            | "having"
            | "limit"
            | "into"
            | "procedure"
            | "from"
            | "where"
            | "offset"
            | "collate"
            | "escape"
            | "then"
            | "else"
            | "end"
            | "when"
            | "as"
            | "for"
            | "using"
            | "desc"
            | "asc"
    )
}

/// Reserved words that cannot be a bare identifier operand.
fn is_reserved(w: &str) -> bool {
    is_clause(w)
        || is_cmp_word(w)
        || matches!(
            w,
            "or" | "and"
                | "xor"
                | "not"
                | "select"
                | "insert"
                | "update"
                | "delete"
                | "drop"
                | "by"
                | "on"
                | "join"
                | "set"
                | "values"
                | "distinct"
                | "all"
                | "exec"
        )
}

/// Functions whose call is SQL wherever it appears (argument shapes English never produces).
fn is_sql_only_function(w: &str) -> bool {
    matches!(
        w,
        "concat"
            | "concat_ws"
            | "group_concat"
            | "unhex"
            | "xmltype"
            | "json_keys"
            | "name_const"
            | "make_set"
            | "elt"
            | "extractvalue"
            | "updatexml"
            | "load_file"
            | "benchmark"
            | "sleep"
            | "pg_sleep"
            | "randomblob"
            | "char_length"
            | "substring_index"
            | "aes_decrypt"
            | "aes_encrypt"
            | "json_extract"
            | "utl_inaddr"
            | "dbms_pipe"
            | "lo_get"
            | "lo_import"
            | "pg_read_file"
            | "exp"
            | "geometrycollection"
            | "multipoint"
            | "polygon"
            | "linestring"
            | "multilinestring"
            | "multipolygon"
            | "ctxsys"
            | "iif"
            | "ifnull"
            | "isnull"
            | "nullif"
            | "coalesce"
            | "instr"
            | "locate"
            | "substr"
            | "mid"
            | "ascii"
            | "ord"
            | "hex"
            | "bin"
            | "conv"
            | "schema"
            | "database"
            | "version"
            | "current_user"
            | "session_user"
            | "system_user"
            | "user_name"
            | "db_name"
            | "host_name"
            | "suser_name"
            | "is_srvrolemember"
            | "convert"
            | "cast"
            | "char"
            | "chr"
            | "nchar"
            | "substring"
            | "rand"
            | "floor"
            | "count"
            | "md5"
            | "sha1"
            | "encode"
            | "decode"
            | "overlay"
            | "starts_with"
            | "json_search"
            | "json_array"
            | "likelihood"
            | "unlikely"
            | "likely"
            | "row"
            | "left"
            | "right"
            | "reverse"
            | "replace"
            | "position"
            | "ltrim"
            | "rtrim"
            | "strcmp"
            | "unicode"
            | "quotename"
            | "if"
            | "user"
            | "current_database"
            | "pg_user"
            | "txid_current"
            | "dbms_xmlgen"
            | "sys_context"
            | "utl_http"
            | "randomblob_"
            | "upper"
            | "lower"
            | "length"
            | "len"
            | "datalength"
            | "cot"
            | "rtrim_"
            | "object_id"
            | "object_name"
            | "col_name"
            | "has_dbaccess"
            | "bit_length"
            | "octet_length"
            | "export_set"
            | "field"
            | "find_in_set"
            | "weight_string"
            | "uuid"
            | "last_insert_id"
    )
}

/// SQL-only functions strong enough to be critical on their own at paranoia 1.
fn is_critical_function(w: &str, empty_args: bool) -> bool {
    match w {
        "concat" | "concat_ws" | "group_concat" | "unhex" | "xmltype" | "json_keys"
        | "name_const" | "make_set" | "elt" | "extractvalue" | "updatexml" | "load_file"
        | "aes_decrypt" | "aes_encrypt" | "substring_index" | "dbms_pipe" | "utl_inaddr"
        | "utl_http" | "dbms_xmlgen" | "lo_get" | "lo_import" | "pg_read_file"
        | "geometrycollection" | "multipoint" | "multilinestring" | "multipolygon"
        | "is_srvrolemember" | "sys_context" => true,
        "version" | "database" | "current_user" | "session_user" | "system_user" | "user"
        | "schema" | "db_name" | "user_name" | "suser_name" | "host_name" | "current_database"
        | "last_insert_id" => empty_args,
        _ => false,
    }
}

/// Functions commonly probed at high paranoia (CRS "SQL function name" style): any call is
/// suspicious, but ordinary words like `date (` or `count (` make these noisy.
fn is_common_sql_function(w: &str) -> bool {
    is_sql_only_function(w)
        || matches!(
            w,
            "abs"
                | "avg"
                | "date"
                | "day"
                | "default"
                | "format"
                | "ln"
                | "local"
                | "log"
                | "max"
                | "min"
                | "minute"
                | "month"
                | "now"
                | "password"
                | "pi"
                | "quarter"
                | "round"
                | "sum"
                | "time"
                | "values"
                | "year"
                | "in"
                | "week"
                | "hour"
                | "second"
                | "sqrt"
                | "power"
                | "sign"
                | "exists"
                | "trim"
                | "ceil"
                | "ceiling"
                | "truncate"
                | "timestamp"
                | "current_timestamp"
                | "sysdate"
                | "getdate"
        )
}

/// Summary of a parsed expression.
#[derive(Default, Debug)]
struct Expr {
    operands: u32,
    strs: u32,
    consts: u32,
    idents: u32,
    funcs: u32,
    cmp: bool,
    /// A comparison between two constants (`1=1`, `'a'='a'`, `2>1`).
    const_cmp: bool,
    select: bool,
    sql_func: bool,
    /// Literal or variable operands anywhere, nested groups included (`( 1 * @a )`).
    literals: u32,
    /// Binary operators, nested groups included.
    ops: u32,
    /// Calls without arguments (`pi()`, `connection_id()`): SQL, not prose citations.
    empty_calls: u32,
}

/// Skips a balanced parenthesised group starting at `t[i] == LParen`; returns the index after
/// it (or the end) and whether `select` occurred inside.
fn skip_group(t: &[Tok<'_>], i: usize) -> (usize, bool) {
    let mut depth = 0i32;
    let mut select = false;
    let mut j = i;
    while j < t.len() {
        match t[j] {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth -= 1;
                if depth == 0 {
                    return (j + 1, select);
                }
            }
            Tok::Word("select") => select = true,
            _ => {}
        }
        j += 1;
    }
    (j, select)
}

/// Parses `operand (op operand)*` from `t[i]`; `None` if the tokens are not a well-formed SQL
/// expression (for prose that is the usual outcome: two words in a row).
fn parse_expr(t: &[Tok<'_>], i: usize) -> Option<(usize, Expr)> {
    parse_expr_depth(t, i, 0)
}

fn parse_expr_depth(t: &[Tok<'_>], mut i: usize, depth: u8) -> Option<(usize, Expr)> {
    let mut e = Expr::default();
    let mut cmp_pending_const: Option<bool> = None;
    loop {
        // Unary prefixes.
        while i < t.len()
            && matches!(
                t[i],
                Tok::Op("-" | "+" | "!" | "~") | Tok::Word("not" | "binary")
            )
        {
            i += 1;
        }
        let tok = *t.get(i)?;
        let is_const;
        match tok {
            Tok::Num { .. } | Tok::Str { .. } | Tok::Word("null" | "true" | "false") => {
                if matches!(tok, Tok::Str { .. }) {
                    e.strs += 1;
                }
                is_const = true;
                i += 1;
            }
            Tok::Var { .. } => {
                is_const = false;
                e.literals += 1;
                i += 1;
            }
            Tok::QIdent => {
                is_const = false;
                e.idents += 1;
                i += 1;
            }
            Tok::LParen => {
                let inner = if depth < 16 && t.get(i + 1) != Some(&Tok::Word("select")) {
                    parse_expr_depth(t, i + 1, depth + 1)
                } else {
                    None
                };
                match inner {
                    Some((end, inner)) => {
                        e.cmp |= inner.cmp;
                        e.const_cmp |= inner.const_cmp;
                        e.select |= inner.select;
                        e.sql_func |= inner.sql_func;
                        e.funcs += inner.funcs;
                        e.literals += inner.literals;
                        e.ops += inner.ops;
                        e.empty_calls += inner.empty_calls;
                        // Parenthesised constants (`(1)=(1)`) still count as constants.
                        is_const = inner.operands == 1 && inner.consts == 1;
                        i = if t.get(end) == Some(&Tok::RParen) {
                            end + 1
                        } else {
                            end
                        };
                    }
                    None => {
                        let (end, sel) = skip_group(t, i);
                        e.select |= sel;
                        is_const = false;
                        i = end;
                    }
                }
            }
            // `= all (select …)`, `> any (select …)`: quantified subquery comparison.
            Tok::Word("all" | "any" | "some") if t.get(i + 1) == Some(&Tok::LParen) => {
                let (end, sel) = skip_group(t, i + 1);
                e.select |= sel;
                e.funcs += 1;
                is_const = false;
                i = end;
            }
            Tok::Word("case") => {
                while i < t.len() && t[i] != Tok::Word("end") {
                    i += 1;
                }
                e.sql_func = true;
                is_const = false;
                i += 1;
            }
            // `isnull(1/0)`, `match(a) against`, `like(…)`: words that are also operators,
            // called as functions.
            Tok::Word(w)
                if !is_reserved(w)
                    || (matches!(
                        w,
                        "isnull" | "notnull" | "match" | "like" | "glob" | "regexp"
                    ) && t.get(i + 1) == Some(&Tok::LParen)) =>
            {
                i += 1;
                // Qualified names: a.b.c
                while i + 1 < t.len()
                    && t[i] == Tok::Dot
                    && matches!(t[i + 1], Tok::Word(_) | Tok::QIdent)
                {
                    i += 2;
                }
                if t.get(i) == Some(&Tok::LParen) {
                    let (end, sel) = skip_group(t, i);
                    e.select |= sel;
                    e.funcs += 1;
                    if t.get(i + 1) == Some(&Tok::RParen) {
                        e.empty_calls += 1;
                    }
                    e.sql_func |= is_sql_only_function(w);
                    i = end;
                    // MySQL's full-text search `match(a) against('b')` is a comparison.
                    if w == "match"
                        && t.get(i) == Some(&Tok::Word("against"))
                        && t.get(i + 1) == Some(&Tok::LParen)
                    {
                        e.cmp = true;
                        i = skip_group(t, i + 1).0;
                    }
                } else {
                    e.idents += 1;
                }
                is_const = false;
            }
            _ => return None,
        }
        e.operands += 1;
        if is_const {
            e.consts += 1;
            e.literals += 1;
        }
        if let Some(prev_const) = cmp_pending_const.take()
            && prev_const
            && is_const
        {
            e.const_cmp = true;
        }
        // `'{}'::jsonb`, `x::varchar(10)`: a PostgreSQL cast leaves the operand what it was.
        while t.get(i) == Some(&Tok::Op("::")) && matches!(t.get(i + 1), Some(Tok::Word(_))) {
            i += 2;
            if t.get(i) == Some(&Tok::LParen) {
                i = skip_group(t, i).0;
            }
        }
        // `not similar to`, `not like`, `not regexp`: a negated comparison word.
        if t.get(i) == Some(&Tok::Word("not"))
            && matches!(t.get(i + 1), Some(Tok::Word(w)) if is_cmp_word(w))
        {
            i += 1;
        }
        // Operator, or the end of the expression.
        match t.get(i) {
            None | Some(Tok::Comment | Tok::Semi | Tok::RParen | Tok::Comma) => {
                return Some((i, e));
            }
            Some(Tok::Word(w)) if is_clause(w) => return Some((i, e)),
            Some(Tok::Op(op)) => {
                if is_cmp_op(op) {
                    e.cmp = true;
                    cmp_pending_const = Some(is_const);
                }
                e.ops += 1;
                i += 1;
            }
            Some(&tok) if is_logic(tok) => i += 1,
            Some(Tok::Word("div" | "mod")) => i += 1,
            Some(Tok::Word("not")) => i += 1,
            Some(Tok::Word(w)) if is_cmp_word(w) => {
                e.cmp = true;
                cmp_pending_const = Some(is_const);
                i += 1;
                // Multi-word operators: `is not null`, `sounds like`, `similar to`, `not between`.
                while let Some(Tok::Word("not" | "like" | "to")) = t.get(i) {
                    i += 1;
                }
                if *w == "is" || *w == "notnull" || *w == "isnull" {
                    if let Some(Tok::Word("null" | "true" | "false" | "unknown")) = t.get(i) {
                        i += 1;
                        match t.get(i) {
                            None | Some(Tok::Comment | Tok::Semi | Tok::RParen) => {
                                return Some((i, e));
                            }
                            Some(&tok) if is_logic(tok) => {
                                i += 1;
                                continue;
                            }
                            _ => return None,
                        }
                    }
                    if *w != "is" {
                        match t.get(i) {
                            None | Some(Tok::Comment | Tok::Semi | Tok::RParen) => {
                                return Some((i, e));
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => return None,
        }
    }
}

/// Whether a statement keyword at `t[i]` starts a well-formed statement (so `; delete the old
/// one` is prose and `; delete from users` is not).
fn statement_at(t: &[Tok<'_>], i: usize) -> bool {
    let w = |k: usize| match t.get(i + k) {
        Some(Tok::Word(w)) => Some(*w),
        _ => None,
    };
    let ident = |k: usize| match t.get(i + k) {
        Some(Tok::Word(x)) => !is_reserved(x),
        Some(Tok::QIdent) => true,
        _ => false,
    };
    let end_at = |k: usize| matches!(t.get(i + k), None | Some(Tok::Comment | Tok::Semi));
    match w(0) {
        Some("select") => select_at(t, i),
        Some("insert" | "replace") => {
            (w(1) == Some("into") && ident(2))
                // `replace t(id, name) values (…)`: the column list and values without `into`.
                || (ident(1)
                    && t.get(i + 2) == Some(&Tok::LParen)
                    && t
                        .get(skip_group(t, i + 2).0)
                        .is_some_and(|x| *x == Tok::Word("values")))
        }
        Some("delete") => {
            // `delete low_priority from t`, `delete ignore from t`.
            let k = usize::from(matches!(w(1), Some("low_priority" | "quick" | "ignore")));
            w(1 + k) == Some("from")
                && ident(2 + k)
                && (end_at(3 + k)
                    || matches!(w(3 + k), Some("where"))
                    || t.get(3 + k + i) == Some(&Tok::Dot))
        }
        Some("update") => ident(1) && w(2) == Some("set"),
        // `merge into t using s on (…) when matched then update …`.
        Some("merge") => {
            w(1) == Some("into")
                && ident(2)
                && t.iter().skip(i + 3).any(|x| *x == Tok::Word("using"))
        }
        Some("drop" | "create" | "alter" | "truncate") => {
            matches!(
                w(1),
                Some(
                    "table"
                        | "database"
                        | "schema"
                        | "view"
                        | "procedure"
                        | "function"
                        | "user"
                        | "trigger"
                        | "index"
                        | "login"
                        | "role"
                        | "temporary"
                        | "or"
                )
            ) && (ident(2) || matches!(w(2), Some("if" | "replace")) || end_at(2))
                // `drop members --`: MySQL's `drop` of a bare name, its query cut off.
                || (w(0) == Some("drop")
                    && ident(1)
                    && matches!(t.get(i + 2), Some(Tok::Comment)))
        }
        // `exec xp_cmdshell 'dir'`, `exec(@q)`, `exec master..`, `execute immediate`: a
        // procedure with its arguments. `exec p` alone is a company ("Exec Systems") unless the
        // name reads as a procedure's (`usp_report`, `dbo.p`) or arguments follow.
        Some("exec" | "execute") => match t.get(i + 1) {
            Some(Tok::Word(x)) => {
                x.starts_with("xp_")
                    || x.starts_with("sp_")
                    || matches!(*x, "master" | "immediate" | "dbo")
                    || (ident(1)
                        && (matches!(
                            t.get(i + 2),
                            Some(Tok::LParen | Tok::Var { .. } | Tok::Str { .. })
                        ) || (end_at(2) && x.contains('_'))
                            // `exec dbo.report`, not "Exec K.K.".
                            || (t.get(i + 2) == Some(&Tok::Dot)
                                && matches!(t.get(i + 3), Some(Tok::Word(w)) if w.len() > 1))))
            }
            Some(Tok::Var { .. } | Tok::LParen) => true,
            _ => false,
        },
        Some("declare") => matches!(t.get(i + 1), Some(Tok::Var { .. })),
        Some("set") => matches!(t.get(i + 1), Some(Tok::Var { .. })) || w(1) == Some("autocommit"),
        Some("shutdown") => end_at(1) || w(1) == Some("with"),
        Some("waitfor") => matches!(w(1), Some("delay" | "time")),
        Some("begin") => {
            matches!(w(1), Some("declare" | "transaction" | "try"))
                || (w(1).is_some() && statement_at(t, i + 1))
        }
        // `if (…)`, `if exists`, `if 1=1 drop table t`.
        Some("if") => {
            matches!(t.get(i + 1), Some(Tok::LParen))
                || w(1) == Some("exists")
                || parse_expr(t, i + 1).is_some_and(|(end, e)| {
                    e.cmp && matches!(t.get(end), Some(Tok::Word(_))) && statement_at(t, end)
                })
        }
        Some("grant" | "revoke") => t
            .iter()
            .skip(i)
            .any(|x| matches!(x, Tok::Word("to" | "from"))),
        Some("load") => matches!(w(1), Some("data" | "xml")),
        // `do (1=1)`, `call p(@a)`: MySQL expression and procedure statements.
        Some("do") => t.get(i + 1) == Some(&Tok::LParen) && parse_expr(t, i + 1).is_some(),
        Some("call") => ident(1) && t.get(i + 2) == Some(&Tok::LParen),
        Some("handler" | "analyze" | "checkpoint" | "vacuum") => end_at(1),
        Some("goto") => ident(1),
        _ => false,
    }
}

/// Whether `t[i] == select` starts a well-formed `select` (select list, then `from table` or the
/// end, with the list SQL-shaped). "select the best option" and "Select Medical" are not.
fn select_at(t: &[Tok<'_>], i: usize) -> bool {
    let mut j = i + 1;
    while let Some(Tok::Word("distinct" | "all" | "top" | "straight_join" | "sql_no_cache")) =
        t.get(j)
    {
        j += 1;
        if let Some(Tok::Num { .. }) = t.get(j) {
            j += 1;
        }
    }
    // `select *` is SQL and nothing else.
    if t.get(j) == Some(&Tok::Op("*")) {
        return true;
    }
    let mut items = 0;
    let mut sqlish = false;
    loop {
        // `select -1, -sin(x)`: unary signs before an item.
        while let Some(Tok::Op("-" | "+" | "~")) = t.get(j) {
            j += 1;
        }
        match t.get(j) {
            Some(Tok::Op("*")) => {
                sqlish = true;
                j += 1;
            }
            Some(Tok::Num { .. } | Tok::Var { .. } | Tok::Word("null")) => {
                sqlish = true;
                j += 1;
            }
            Some(Tok::Str { .. }) => {
                sqlish = true;
                j += 1;
            }
            Some(Tok::LParen) => {
                sqlish = true;
                j = skip_group(t, j).0;
            }
            Some(Tok::Word("case")) => {
                return true;
            }
            Some(Tok::Word(w)) if !is_reserved(w) => {
                j += 1;
                while j + 1 < t.len()
                    && t[j] == Tok::Dot
                    && matches!(t[j + 1], Tok::Word(_) | Tok::QIdent | Tok::Op("*"))
                {
                    j += 2;
                }
                if t.get(j) == Some(&Tok::LParen) {
                    sqlish |= is_sql_only_function(w) || is_common_sql_function(w);
                    j = skip_group(t, j).0;
                }
            }
            Some(Tok::QIdent) => {
                sqlish = true;
                j += 1;
            }
            _ => return false,
        }
        items += 1;
        // Optional arithmetic / concatenation inside an item: `char(1)+char(2)`, `1||2`.
        while let Some(Tok::Op("+" | "-" | "||" | "*" | "/")) = t.get(j) {
            match t.get(j + 1) {
                Some(
                    Tok::Num { .. }
                    | Tok::Str { .. }
                    | Tok::Word(_)
                    | Tok::LParen
                    | Tok::Var { .. },
                ) => {
                    sqlish = true;
                    j += 2;
                    if t.get(j) == Some(&Tok::LParen) {
                        j = skip_group(t, j).0;
                    }
                }
                _ => break,
            }
        }
        // Optional alias.
        if t.get(j) == Some(&Tok::Word("as")) {
            j += 2;
        }
        if t.get(j) == Some(&Tok::Comma) {
            j += 1;
            continue;
        }
        break;
    }
    let sqlish = sqlish || items >= 2;
    match t.get(j) {
        None | Some(Tok::Comment | Tok::Semi | Tok::RParen) => sqlish,
        Some(Tok::Word("from")) => {
            let table = matches!(t.get(j + 1), Some(Tok::Word(w)) if !is_reserved(w))
                || matches!(t.get(j + 1), Some(Tok::QIdent | Tok::LParen));
            if !table {
                return false;
            }
            let mut k = j + 2;
            if t.get(j + 1) == Some(&Tok::LParen) {
                k = skip_group(t, j + 1).0;
            }
            while k + 1 < t.len() && t[k] == Tok::Dot {
                k += 2;
            }
            if sqlish {
                return true;
            }
            match t.get(k) {
                None | Some(Tok::Comment | Tok::Semi | Tok::RParen) => true,
                Some(Tok::Word(
                    "limit" | "order" | "group" | "union" | "join" | "into" | "procedure",
                )) => true,
                Some(Tok::Word("where")) => parse_expr(t, k + 1).is_some_and(|(_, e)| e.cmp),
                _ => false,
            }
        }
        Some(Tok::Word("into" | "union" | "limit" | "where" | "order")) => true,
        Some(Tok::Word("group")) => t.get(j + 1) == Some(&Tok::Word("by")),
        Some(Tok::Op(_)) => sqlish,
        _ => false,
    }
}

/// The expression from `t[i]` runs to the end of the value and ends in a short unclosed string
/// (`' or '`, `a' << 'b`, `' div '`): the attacker leaves the application's own closing quote to
/// balance the injected one. Prose that happens to contain two quotes ends in a longer string.
fn balanced_tail(t: &[Tok<'_>], i: usize) -> bool {
    i < t.len()
        && matches!(parse_expr(t, i), Some((end, _)) if end == t.len())
        && matches!(t.last(), Some(Tok::Str { short: true, .. }))
}

/// The expression from `t[i]` is well formed and is cut off by a comment (`' != ascii(1)#`).
fn commented_tail(t: &[Tok<'_>], i: usize) -> bool {
    matches!(parse_expr(t, i), Some((end, e))
        if e.operands > 0
            && (e.literals > 0 || e.funcs > 0 || e.cmp)
            && t.get(end) == Some(&Tok::Comment))
}

/// `balanced_tail` or `commented_tail` after a breakout that is glued to its literal (`a'<<'b`,
/// not `browning "like"`). A value that is only a double-quoted punctuation mark (`"*"`) is a
/// search for that character; single-quoted (`'='`, `' < '`) it is SQL's string quote wrapped
/// round an operator.
fn operator_tail(t: &[Tok<'_>], i: usize, prefix: PrefixKind, word_op: bool) -> bool {
    let PrefixKind::Quote {
        spaced,
        empty,
        one_word,
        single,
    } = prefix
    else {
        return false;
    };
    // `a'<<'b`, `A '<=>' B`; not `browning "like"` after a phrase.
    // With a space before the quote, the closing string must carry an operand (`' B`), not be
    // the bare closing quote of a quoted word (`browning "like"`).
    let lone_end = matches!(t.last(), Some(Tok::Str { lone: true, .. }));
    if spaced && !(one_word && !lone_end && balanced_tail(t, i)) {
        return false;
    }
    if empty
        && !word_op
        && !single
        && i + 1 == t.len()
        && matches!(t.last(), Some(Tok::Str { lone: true, .. }))
    {
        return false;
    }
    balanced_tail(t, i) || commented_tail(t, i)
}

/// Word operators that may follow a string literal (`' div '`, `a' sounds like 'b`).
fn is_word_operator(w: &str) -> bool {
    matches!(
        w,
        "div"
            | "mod"
            | "sounds"
            | "like"
            | "not"
            | "regexp"
            | "rlike"
            | "is"
            | "binary"
            | "glob"
            | "ilike"
            | "similar"
            | "to"
            | "between"
            | "in"
    )
}

/// Rules that look at a breakout: the application's literal (`Prefix` or a leading number) has
/// ended at `t[i]`; is what follows SQL? `tail_words`: words after a comment that ends the value.
fn breakout_rules(
    t: &[Tok<'_>],
    mut i: usize,
    prefix: PrefixKind,
    tail_words: Option<usize>,
    hits: &mut Hits,
) {
    // Closing parentheses of the application's own expression: `1') or ('1'='1`.
    while t.get(i) == Some(&Tok::RParen) {
        i += 1;
    }
    let Some(&next) = t.get(i) else { return };
    let quoted = matches!(prefix, PrefixKind::Quote { .. });
    if is_logic(next) {
        if let Some((end, e)) = parse_expr(t, i + 1) {
            // `' or 1--`, `' or true`: a constant is enough; `" and "disney` (strings only,
            // nothing cut off) reads like quoted prose.
            let const_only = e.operands == e.consts
                && e.operands > 0
                && (e.strs < e.consts || t.get(end) == Some(&Tok::Comment));
            let strong = e.cmp
                || e.funcs > 0
                || e.select
                || const_only
                || (quoted && (balanced_tail(t, i + 1) || commented_tail(t, i + 1)));
            match prefix {
                PrefixKind::Quote { .. } | PrefixKind::Number if strong => {
                    hits.add(1, "sqli.breakout_boolean", CRITICAL);
                }
                PrefixKind::Word | PrefixKind::Empty if e.const_cmp || e.select || e.sql_func => {
                    hits.add(1, "sqli.breakout_boolean", CRITICAL);
                }
                // A value that opens with `or`/`and` and is one short comparison or constant to
                // its end or a comment (` OR x=y#`, ` or true--`): the rest of a WHERE clause,
                // appended to the application's own condition.
                PrefixKind::Empty
                    if (e.cmp || const_only)
                        && e.operands <= 4
                        && matches!(t.get(end), None | Some(Tok::Comment)) =>
                {
                    hits.add(1, "sqli.breakout_boolean", CRITICAL);
                }
                PrefixKind::Word | PrefixKind::Empty if e.cmp && e.consts > 0 => {
                    hits.add(2, "sqli.boolean_expression", WARNING);
                }
                _ => {}
            }
        }
        return;
    }
    match next {
        Tok::Comment => match prefix {
            // `admin'--`; but `"#2 mom"` (a quote opening the value) is prose.
            PrefixKind::Quote {
                spaced: false,
                empty: false,
                ..
            } => hits.add(1, "sqli.breakout_comment", CRITICAL),
            PrefixKind::Quote { .. } => hits.add(2, "sqli.breakout_comment", WARNING),
            // `1--`, `-1#`, `1 --x`: a number whose query is cut off. Prose after the comment
            // marker (`1 -- the first option`) keeps it a paranoia-2 warning.
            PrefixKind::Number if tail_words.unwrap_or(0) <= 1 => {
                hits.add(1, "sqli.number_comment", CRITICAL);
            }
            PrefixKind::Number => hits.add(2, "sqli.number_comment", WARNING),
            _ => {}
        },
        Tok::Semi => {
            if t.get(i + 1).is_some_and(|_| statement_at(t, i + 1)) {
                hits.add(1, "sqli.stacked_query", CRITICAL);
            } else if quoted
                && matches!(
                    t.get(i + 1),
                    Some(Tok::Word(
                        "select"
                            | "insert"
                            | "update"
                            | "delete"
                            | "drop"
                            | "exec"
                            | "execute"
                            | "declare"
                            | "shutdown"
                            | "create"
                            | "alter"
                            | "truncate"
                            | "union"
                            | "waitfor"
                            | "replace"
                            | "set"
                    ))
                )
            {
                // `';select p`: closing the string and starting a statement, even a truncated one.
                hits.add(1, "sqli.stacked_query", CRITICAL);
            } else if quoted && matches!(t.get(i + 1), None | Some(Tok::Comment)) {
                hits.add(2, "sqli.breakout_terminator", WARNING);
            }
        }
        Tok::Word("order" | "group") if t.get(i + 1) == Some(&Tok::Word("by")) => {
            let ok = match t.get(i + 2) {
                Some(Tok::Num { .. }) => true,
                Some(Tok::Word(w)) if !is_reserved(w) => {
                    matches!(
                        t.get(i + 3),
                        None | Some(
                            Tok::Comment
                                | Tok::Comma
                                | Tok::Word("asc" | "desc" | "limit" | "having")
                        )
                    )
                }
                Some(Tok::Word("if") | Tok::LParen) => true,
                _ => false,
            };
            if ok && prefix != PrefixKind::Empty {
                hits.add(1, "sqli.breakout_clause", CRITICAL);
            }
        }
        Tok::Word("having")
            if parse_expr(t, i + 1).is_some_and(|(_, e)| e.cmp || e.funcs > 0)
                && prefix != PrefixKind::Empty =>
        {
            hits.add(1, "sqli.breakout_clause", CRITICAL);
        }
        Tok::Word("limit")
            if matches!(t.get(i + 1), Some(Tok::Num { .. }))
                && prefix != PrefixKind::Empty
                && prefix != PrefixKind::Word =>
        {
            hits.add(2, "sqli.breakout_clause", ERROR);
        }
        // `-234 union`, `1/**/union#`: a union left for the rest of the query (truncated probe).
        Tok::Word("union")
            if matches!(t.get(i + 1), None | Some(Tok::Comment))
                && matches!(
                    prefix,
                    PrefixKind::Number | PrefixKind::Quote { spaced: false, .. }
                ) =>
        {
            hits.add(1, "sqli.breakout_union", CRITICAL);
        }
        Tok::Word("procedure") if t.get(i + 1) == Some(&Tok::Word("analyse")) => {
            hits.add(1, "sqli.breakout_clause", CRITICAL);
        }
        Tok::Word(w)
            if quoted && is_word_operator(w) && {
                let mut j = i;
                while matches!(t.get(j), Some(Tok::Word(x)) if is_word_operator(x)) {
                    j += 1;
                }
                operator_tail(t, j, prefix, true)
            } =>
        {
            // `' div '`, `a' sounds like 'b`, `' not regexp '`, `'is 0 = '`.
            hits.add(1, "sqli.breakout_operator", CRITICAL);
        }
        Tok::Word(
            "union" | "alter" | "select" | "insert" | "delete" | "update" | "drop" | "exec"
            | "execute" | "create" | "declare" | "waitfor" | "collate" | "rlike" | "regexp"
            | "like" | "glob" | "not" | "is" | "in" | "between" | "ilike" | "similar",
        ) if quoted => {
            // `'union a`, `' alter/`, `'collate nocase--`: a keyword straight after the quote.
            // A value that starts with a quoted word (`"like" stamp`) is prose, not a breakout.
            let quoted_word = matches!(prefix, PrefixKind::Quote { empty: true, .. })
                && matches!(t.get(i + 1), Some(Tok::Str { .. }));
            if quoted_word {
                return;
            }
            if statement_at(t, i) {
                hits.add(1, "sqli.breakout_statement", CRITICAL);
            } else if matches!(
                next,
                Tok::Word(
                    "like"
                        | "rlike"
                        | "regexp"
                        | "glob"
                        | "ilike"
                        | "similar"
                        | "collate"
                        | "is"
                        | "between"
                        | "in"
                )
            ) && parse_expr(t, i).is_none()
            {
                // `' like 'x` / `'collate nocase--`: operator continuation right after the quote.
                let continues = matches!(
                    t.get(i + 1),
                    Some(
                        Tok::Str { lone: false, .. }
                            | Tok::Num { .. }
                            | Tok::Word(_)
                            | Tok::QIdent
                            | Tok::LParen
                    )
                );
                let cut = t[i..].iter().any(|x| {
                    matches!(
                        x,
                        Tok::Comment
                            | Tok::Str {
                                closed: false,
                                lone: false,
                                ..
                            }
                    )
                });
                if continues && cut {
                    hits.add(1, "sqli.breakout_operator", CRITICAL);
                } else if continues {
                    hits.add(2, "sqli.breakout_operator", WARNING);
                }
            } else if matches!(
                prefix,
                PrefixKind::Quote {
                    spaced: false,
                    empty: false,
                    ..
                }
            ) {
                // `'union a`, `"alter/`: keyword glued to the closing quote.
                hits.add(2, "sqli.breakout_keyword", CRITICAL);
            } else {
                hits.add(3, "sqli.breakout_keyword", CRITICAL);
            }
        }
        Tok::Op(op) if quoted || prefix == PrefixKind::Number => {
            // `'+(select …)+'`, `1*(select …)`, `'='`, `' = 'x`
            let sub = matches!(t.get(i + 1), Some(Tok::LParen)) && skip_group(t, i + 1).1;
            if sub {
                hits.add(1, "sqli.breakout_subquery", CRITICAL);
            } else if !matches!(op, ":") && operator_tail(t, i + 1, prefix, false) {
                // `a' << 'b`, `' < '`, `'|'`, `' != ascii(1)#`: an operator between the broken
                // literal and one the application's closing quote completes.
                hits.add(1, "sqli.breakout_operator", CRITICAL);
            } else if is_cmp_op(op) && quoted {
                // `x'='x`, `' = '` — comparison continuing the literal.
                if let Some((_, e)) = parse_expr(t, i + 1) {
                    let rest_is_expr = e.operands >= 1;
                    let cut = t[i..].iter().any(|x| matches!(x, Tok::Comment)) || e.consts > 0;
                    if rest_is_expr && cut {
                        hits.add(2, "sqli.breakout_comparison", ERROR);
                    }
                }
            } else if matches!(op, "||" | "|" | "&" | "^" | "+" | "*" | "/" | "-" | "::")
                && let Some((end, e)) = parse_expr(t, i + 1)
                && (e.sql_func || e.select)
                && (quoted || matches!(t.get(end), None | Some(Tok::Comment)))
            {
                // `'||ascii(x)||'`, `456 + ascii(substring(passwd,1,1))-10`.
                hits.add(1, "sqli.breakout_expression", CRITICAL);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrefixKind {
    /// Breakout from a quoted literal.
    Quote {
        spaced: bool,
        empty: bool,
        one_word: bool,
        /// The literal was single-quoted (SQL's string quote; `"` quotes prose and identifiers).
        single: bool,
    },
    /// Bare value starting with a number (`1 or 1=1`).
    Number,
    /// Bare value starting with a single word (`x or 1=1`): weaker evidence.
    Word,
    /// Nothing before the keyword (`or 1=1`).
    Empty,
}

/// Rules that hold wherever a construct appears in the token stream.
fn anywhere_rules(t: &[Tok<'_>], hits: &mut Hits) {
    for (i, &tok) in t.iter().enumerate() {
        // `… and (pi()=pi())--`, `and connection_id()=connection_id()`: calls without
        // arguments compared and no names; prose cites "(2019)", never `f()`.
        if is_logic(tok)
            && let Some((_, e)) = parse_expr(t, i + 1)
            && e.cmp
            && e.idents == 0
            && e.empty_calls > 0
        {
            hits.add(1, "sqli.tautology", CRITICAL);
        }
    }
    for (i, &tok) in t.iter().enumerate() {
        let next = t.get(i + 1).copied();
        // Below, only a call (`word(`) looks at a word no rule names: skip the rest at once.
        if let Tok::Word(w) = tok
            && next != Some(Tok::LParen)
            && !is_trigger_word(w)
        {
            continue;
        }
        match tok {
            Tok::Word("union") => {
                let mut j = i + 1;
                if matches!(t.get(j), Some(Tok::Word("all" | "distinct"))) {
                    j += 1;
                }
                while t.get(j) == Some(&Tok::LParen) {
                    j += 1;
                }
                if t.get(j) == Some(&Tok::Word("select")) {
                    // `union select null,2`, `union select @@version--`, `union select * from`:
                    // a select list. "Union Select Committee" is one plain word that ends the
                    // value, which a union-based probe never is.
                    let lone_word = i == 0
                        && matches!(t.get(j + 1), Some(Tok::Word(w)) if !is_reserved(w))
                        && t.len() == j + 2;
                    hits.add(if lone_word { 2 } else { 1 }, "sqli.union_select", CRITICAL);
                } else if matches!(t.get(j), Some(Tok::Word("values"))) {
                    hits.add(2, "sqli.union_select", CRITICAL);
                }
            }
            Tok::Word("except" | "intersect")
                if matches!(next, Some(Tok::Word("select" | "values"))) =>
            {
                // `except values(1,2)`: prose does not put a tuple after "except values".
                let tuple = next == Some(Tok::Word("values")) && t.get(i + 2) == Some(&Tok::LParen);
                hits.add(if tuple { 1 } else { 2 }, "sqli.union_select", CRITICAL);
            }
            Tok::Semi => {
                if matches!(next, Some(Tok::Word(_))) && statement_at(t, i + 1) {
                    hits.add(1, "sqli.stacked_query", CRITICAL);
                } else if matches!(
                    next,
                    Some(Tok::Word(
                        "truncate" | "drop" | "insert" | "replace" | "shutdown" | "exec"
                    ))
                ) && i == 0
                {
                    // `;truncate[xx`: a value that *starts* with a statement separator.
                    hits.add(1, "sqli.stacked_query", CRITICAL);
                } else if matches!(next, Some(Tok::Word("if" | "begin")))
                    && t[i + 2..].iter().take(6).any(|x| {
                        matches!(
                            x,
                            Tok::Word("drop" | "shutdown" | "exec" | "delete" | "truncate")
                        )
                    })
                {
                    // `;if 1=1 drop table users--`, `; begin shutdown end--`.
                    hits.add(1, "sqli.stacked_query", CRITICAL);
                }
            }
            // `if(2=`, `if(1=1,1,sleep(1))`: conditional with a comparison inside.
            Tok::Word("if")
                if next == Some(Tok::LParen)
                    && (parse_expr(t, i + 2).is_some_and(|(_, e)| e.cmp)
                        || matches!(t.get(i + 3), Some(Tok::Op("=" | "<" | ">")))) =>
            {
                // `if(2=`: a literal compared straight after the bracket is never prose.
                let literal = matches!(t.get(i + 2), Some(Tok::Num { .. } | Tok::Str { .. }));
                hits.add(if literal { 1 } else { 2 }, "sqli.conditional", CRITICAL);
            }
            Tok::Word("select") => {
                if select_at(t, i) {
                    hits.add(1, "sqli.select_statement", CRITICAL);
                    // The value opens with the statement: it is a query, not a note about one.
                    if i == 0 {
                        hits.add(1, "sqli.statement_value", CRITICAL);
                    }
                } else if matches!(next, Some(Tok::Word(w)) if !is_reserved(w)) {
                    // `select pg_sleep`, `select x group by …`: lone select + name.
                    hits.add(4, "sqli.select_keyword", WARNING);
                }
            }
            Tok::Word(
                "insert" | "delete" | "update" | "drop" | "create" | "alter" | "truncate" | "exec"
                | "execute" | "declare" | "shutdown" | "replace" | "grant" | "load" | "merge",
            ) if statement_at(t, i) => {
                // Bare statements are only plausible at the start of the value or after `(`.
                let at_start =
                    i == 0 || matches!(t[i - 1], Tok::LParen | Tok::Prefix { .. } | Tok::Semi);
                if at_start {
                    hits.add(1, "sqli.statement", CRITICAL);
                    if i == 0 {
                        hits.add(1, "sqli.statement_value", CRITICAL);
                    }
                } else {
                    hits.add(2, "sqli.statement", CRITICAL);
                }
            }
            // `into outfile '/var/www/x.php'`: writing a file from the database server.
            Tok::Word("into") if matches!(next, Some(Tok::Word("outfile" | "dumpfile"))) => {
                hits.add(1, "sqli.file_write", CRITICAL);
            }
            // `procedure analyse()`: MySQL's column-type report, a probe of the query's shape.
            Tok::Word("procedure") if matches!(next, Some(Tok::Word("analyse" | "analyze"))) => {
                hits.add(1, "sqli.schema_probe", CRITICAL);
            }
            // `execute php`, `exec views`: a procedure call with nothing else, also the shape
            // of "Exec Systems"; only at higher paranoia.
            Tok::Word("exec" | "execute")
                if i == 0
                    && t.len() == 2
                    && matches!(next, Some(Tok::Word(w)) if !is_reserved(w)) =>
            {
                hits.add(2, "sqli.statement", CRITICAL);
            }
            Tok::Word("waitfor") if matches!(next, Some(Tok::Word("delay" | "time"))) => {
                hits.add(1, "sqli.time_delay", CRITICAL);
            }
            Tok::Word("sleep" | "benchmark" | "pg_sleep" | "randomblob" | "dbms_lock") => {
                // `sleep(5)`, `benchmark(1000000,md5(1))`, `pg_sleep(…)`.
                let call_args = matches!(next, Some(Tok::LParen))
                    && matches!(
                        t.get(i + 2),
                        Some(Tok::Num { .. } | Tok::LParen | Tok::Word(_) | Tok::Var { .. })
                    );
                if call_args || tok == Tok::Word("pg_sleep") {
                    hits.add(1, "sqli.time_delay", CRITICAL);
                } else if matches!(next, Some(Tok::LParen)) {
                    hits.add(2, "sqli.time_delay", ERROR);
                }
            }
            Tok::Word(
                "information_schema" | "sysobjects" | "syscolumns" | "sysusers" | "sysdatabases"
                | "pg_catalog" | "pg_shadow" | "pg_user" | "pg_database" | "sqlite_master"
                | "sqlite_schema" | "sqlite_temp_master" | "msysobjects" | "msysaccessobjects"
                | "all_tables" | "user_tables" | "all_tab_columns" | "user_tab_columns"
                | "xp_cmdshell" | "xp_dirtree" | "xp_regread" | "xp_fileexist" | "xp_subdirs"
                | "sp_executesql" | "sp_oacreate" | "sp_makewebtask" | "sp_password"
                | "sp_addlogin" | "sp_configure" | "utl_http" | "utl_inaddr" | "dbms_pipe"
                | "dbms_xmlgen" | "dbms_java" | "sys_eval" | "sys_exec" | "pg_read_file"
                | "pg_ls_dir" | "lo_import" | "lo_export" | "lo_get" | "load_file" | "outfile"
                | "dumpfile" | "mysql_history" | "v$version" | "dual" | "sysibm" | "syscat"
                | "rdb$database",
            ) => {
                let w = match tok {
                    Tok::Word(w) => w,
                    _ => "",
                };
                // `dual` and `outfile` are words too: require SQL around them.
                let ok = match w {
                    "dual" => i > 0 && t[i - 1] == Tok::Word("from"),
                    "outfile" | "dumpfile" => i > 0 && t[i - 1] == Tok::Word("into"),
                    _ => true,
                };
                if ok {
                    hits.add(1, "sqli.schema_probe", CRITICAL);
                }
            }
            Tok::Word("mysql" | "master" | "msdb" | "tempdb") if next == Some(Tok::Dot) => {
                if let Some(Tok::Word("user" | "dbo" | "sys" | "db" | "sysdatabases") | Tok::Dot) =
                    t.get(i + 2)
                {
                    hits.add(1, "sqli.schema_probe", CRITICAL);
                }
            }
            Tok::Var { system: true } => hits.add(1, "sqli.system_variable", CRITICAL),
            Tok::Word(w) if next == Some(Tok::LParen) => {
                let empty = matches!(t.get(i + 2), Some(Tok::RParen | Tok::Comment) | None);
                // Prose writes "Administrator (SQL Server)"; SQL writes `char(58)`.
                let char_code = matches!(w, "char" | "chr" | "nchar")
                    && matches!(t.get(i + 2), Some(Tok::Num { .. }))
                    && matches!(t.get(i + 3), Some(Tok::RParen | Tok::Comma));
                // `ascii(substring(passwd,1,1))`: one SQL-only function straight inside another.
                let nested = is_sql_only_function(w)
                    && matches!(t.get(i + 2), Some(Tok::Word(w2)) if is_sql_only_function(w2))
                    && t.get(i + 3) == Some(&Tok::LParen);
                if is_critical_function(w, empty) || char_code || nested {
                    hits.add(1, "sqli.sql_function", CRITICAL);
                } else if matches!(w, "cast" | "convert")
                    && t[i..].iter().take(16).any(|x| {
                        matches!(
                            x,
                            Tok::Word("as" | "using" | "int" | "char" | "varchar" | "nvarchar")
                        )
                    })
                {
                    hits.add(2, "sqli.sql_function", ERROR);
                } else if is_sql_only_function(w) {
                    hits.add(2, "sqli.sql_function", WARNING);
                    if !matches!(t.get(i + 2), Some(Tok::RParen)) {
                        hits.add(3, "sqli.function_call", CRITICAL);
                    }
                } else if is_common_sql_function(w) {
                    hits.add(3, "sqli.function_call", CRITICAL);
                }
            }
            Tok::Num { hex: true, len } if len >= 6 => hits.add(2, "sqli.hex_literal", WARNING),
            Tok::Word("case")
                if t[i..].iter().take(12).any(|x| *x == Tok::Word("when"))
                    && t[i..].iter().take(20).any(|x| *x == Tok::Word("then")) =>
            {
                hits.add(2, "sqli.case_when", CRITICAL);
            }
            Tok::Word("having")
                if parse_expr(t, i + 1).is_some_and(|(_, e)| e.cmp && e.funcs > 0) =>
            {
                hits.add(2, "sqli.having", CRITICAL);
            }
            Tok::Word("group" | "order") if next == Some(Tok::Word("by")) => {
                // `… group by x having`, `order by 1--`.
                let rest = &t[i..];
                if rest.iter().take(12).any(|x| *x == Tok::Word("having")) {
                    hits.add(2, "sqli.having", CRITICAL);
                } else if matches!(t.get(i + 2), Some(Tok::Num { .. })) {
                    hits.add(2, "sqli.order_by_number", ERROR);
                } else {
                    hits.add(3, "sqli.order_by", WARNING);
                }
            }
            Tok::Word("or" | "and" | "xor") | Tok::Op("||" | "&&") if i > 0 => {
                // Tautologies anywhere: `… or 1=1`, `… and 'a'='a'`.
                if let Some((_, e)) = parse_expr(t, i + 1)
                    && e.const_cmp
                {
                    hits.add(2, "sqli.tautology", CRITICAL);
                }
            }
            Tok::Word("into") if matches!(next, Some(Tok::Word("outfile" | "dumpfile"))) => {
                hits.add(1, "sqli.schema_probe", CRITICAL);
            }
            Tok::Word(
                "like" | "rlike" | "regexp" | "glob" | "ilike" | "notnull" | "isnull" | "collate"
                | "sounds" | "xor" | "between",
            ) => {
                // CRS-style operator spotting: noisy on prose ("KHTML, like Gecko"), so high
                // paranoia only, and at 3 only with a literal operand next to it.
                let literal = |x: Option<&Tok<'_>>| {
                    matches!(
                        x,
                        Some(
                            Tok::Str { .. }
                                | Tok::Num { .. }
                                | Tok::Var { .. }
                                | Tok::QIdent
                                | Tok::Word("null")
                        )
                    )
                };
                let prev = i.checked_sub(1).and_then(|p| t.get(p));
                if literal(t.get(i + 1))
                    || literal(prev)
                    || matches!(next, None | Some(Tok::Comment))
                    || matches!(
                        tok,
                        Tok::Word("notnull" | "isnull" | "xor" | "rlike" | "regexp")
                    )
                {
                    hits.add(3, "sqli.operator", WARNING);
                } else {
                    hits.add(4, "sqli.operator", WARNING);
                }
            }
            Tok::Word("is") if matches!(next, Some(Tok::Word("null" | "not"))) => {
                hits.add(3, "sqli.operator", WARNING);
            }
            Tok::Word("in") if next == Some(Tok::LParen) => {
                hits.add(3, "sqli.operator", WARNING);
            }
            Tok::Op(
                "<=>" | "<>" | "!=" | "||" | "&&" | ">>" | "<<" | "==" | "->" | "->>" | "::" | ":=",
            ) => {
                hits.add(4, "sqli.operator", WARNING);
            }
            _ => {}
        }
    }
}

/// A value that is the tail of a query: it starts with a clause keyword and continues as that
/// clause (`having count(id) > 5`, `from users where name = 'x'`, `` from `db`.`t` limit ``).
fn clause_fragment(t: &[Tok<'_>], hits: &mut Hits) {
    match t.first() {
        Some(Tok::Word("having"))
            if parse_expr(t, 1).is_some_and(|(_, e)| e.cmp && (e.sql_func || e.consts > 0)) =>
        {
            hits.add(1, "sqli.clause_fragment", CRITICAL);
        }
        // `order by 3--`, `group by 2#`: column-count probing, the query cut off after it.
        Some(Tok::Word("order" | "group"))
            if t.get(1) == Some(&Tok::Word("by"))
                && matches!(t.get(2), Some(Tok::Num { .. }))
                && t.iter()
                    .skip(3)
                    .all(|x| matches!(x, Tok::Comma | Tok::Num { .. } | Tok::Comment))
                && t.last() == Some(&Tok::Comment) =>
        {
            hits.add(1, "sqli.clause_fragment", CRITICAL);
        }
        // `as injectx where 1=1 and 1=1`: an alias, then the injected condition.
        Some(Tok::Word("as"))
            if matches!(t.get(1), Some(Tok::Word(w)) if !is_reserved(w))
                && t.get(2) == Some(&Tok::Word("where"))
                && parse_expr(t, 3).is_some_and(|(end, e)| e.cmp && end == t.len()) =>
        {
            hits.add(1, "sqli.clause_fragment", CRITICAL);
        }
        Some(Tok::Word("from")) => {
            let mut k = 1;
            let mut quoted_ident = false;
            let mut qualified = false;
            match t.get(k) {
                Some(Tok::QIdent) => quoted_ident = true,
                Some(Tok::Word(w)) if !is_reserved(w) => {}
                _ => return,
            }
            k += 1;
            while t.get(k) == Some(&Tok::Dot)
                && matches!(t.get(k + 1), Some(Tok::Word(_) | Tok::QIdent))
            {
                qualified = true;
                quoted_ident |= t.get(k + 1) == Some(&Tok::QIdent);
                k += 2;
            }
            let by = |x: usize| t.get(x + 1) == Some(&Tok::Word("by"));
            let strong = match t.get(k) {
                Some(Tok::Word("where")) => parse_expr(t, k + 1).is_some_and(|(_, e)| e.cmp),
                Some(Tok::Word("limit" | "join")) => quoted_ident || qualified,
                Some(Tok::Word("group" | "order")) if by(k) => {
                    quoted_ident
                        || qualified
                        || matches!(t.get(k + 3), Some(Tok::Word("having" | "limit")))
                }
                _ => false,
            };
            if strong {
                hits.add(1, "sqli.clause_fragment", CRITICAL);
            }
        }
        _ => {}
    }
    alias_from(t, hits);
}

/// `` as `alias` from ``: a select list's alias followed by its table.
fn alias_from(t: &[Tok<'_>], hits: &mut Hits) {
    for w in t.windows(3) {
        if w[0] == Tok::Word("as") && w[1] == Tok::QIdent && w[2] == Tok::Word("from") {
            hits.add(1, "sqli.alias_from", CRITICAL);
        } else if w[0] == Tok::Word("as")
            && matches!(w[1], Tok::Str { closed: true, .. })
            && w[2] == Tok::Word("from")
        {
            hits.add(2, "sqli.alias_from", CRITICAL);
        }
    }
}

/// Whether `t` (a whole value) is nothing but an SQL operator, optionally between a closing and
/// an opening bracket (`) like (`) and before a comment: `<>`, `||`, `is null`, `regexp`,
/// `order by`. Single words that are also English (`like`, `between`) count only inside brackets.
fn operator_only(t: &[Tok<'_>]) -> bool {
    let mut a = 0;
    while t.get(a) == Some(&Tok::RParen) {
        a += 1;
    }
    let mut b = t.len();
    if b > a && t[b - 1] == Tok::Comment {
        b -= 1;
    }
    let mut bracketed = a > 0;
    while b > a && t[b - 1] == Tok::LParen {
        b -= 1;
        bracketed = true;
    }
    match &t[a..b] {
        [Tok::Op(op)] => {
            is_cmp_op(op) || matches!(*op, "||" | "&&" | ">>" | "<<" | "->" | "->>" | ":=")
        }
        [Tok::Word("xor" | "regexp" | "rlike" | "notnull" | "isnull")] => true,
        [Tok::Word(w)] => bracketed && (is_cmp_word(w) || matches!(*w, "or" | "and" | "div")),
        [Tok::Word("is" | "like"), Tok::Word("null")]
        | [Tok::Word("is"), Tok::Word("not"), Tok::Word("null")]
        | [
            Tok::Word("not"),
            Tok::Word("like" | "regexp" | "rlike" | "in" | "between"),
        ]
        | [Tok::Word("sounds"), Tok::Word("like")]
        | [Tok::Word("order" | "group"), Tok::Word("by")] => true,
        _ => false,
    }
}

/// A value ending in a call to an SQL function that is left open: `sleep(`, `cast(`,
/// `length||!!$(`, `IN/**/(`. What people write either closes the bracket ("Day (USPS)") or does
/// not put a function name before it.
fn unclosed_call(s: &str) -> bool {
    let t = s.trim_end();
    let b = t.as_bytes();
    if b.last() != Some(&b'(') {
        return false;
    }
    let mut k = b.len() - 1;
    let mut between = 0;
    while k > 0 && !super::is_word_byte(b[k - 1]) {
        k -= 1;
        between += 1;
        if between > 6 {
            return false;
        }
    }
    let end = k;
    while k > 0 && super::is_word_byte(b[k - 1]) {
        k -= 1;
    }
    let w = t.get(k..end).unwrap_or("");
    !w.is_empty() && is_common_sql_function(w) && words_in(&b[..k]) <= 2
}

/// Whole values that are a piece of SQL and nothing else: what a scanner sends to see which
/// fragment changes the response. People do not type a lone operator, end a field with an open
/// call to an SQL function, or write a bracketed list of numbers after "in".
fn probe_rules(s: &str, t: &[Tok<'_>], hits: &mut Hits) {
    if unclosed_call(s) {
        hits.add(1, "sqli.probe_call", CRITICAL);
    }
    if operator_only(t) {
        hits.add(1, "sqli.probe_operator", CRITICAL);
    }
    // `'-'`, `"^"`, `' '`: an operator (or nothing) between the application's quotes, so the
    // comparison becomes string arithmetic (`name = ''-''` is 0 in MySQL, matching every row).
    let v = s.trim();
    let vb = v.as_bytes();
    if (3..=5).contains(&vb.len())
        && matches!(vb[0], b'\'' | b'"')
        && vb[vb.len() - 1] == vb[0]
        && {
            let mid = v[1..v.len() - 1].trim();
            mid.len() <= 1
                && mid
                    .bytes()
                    .all(|c| matches!(c, b'-' | b'+' | b'*' | b'/' | b'&' | b'|' | b'^' | b'%' | b'<' | b'>' | b'=' | b'!' | b'~'))
        }
        // `"*"` is how people search for an asterisk.
        && v != "\"*\""
    {
        hits.add(1, "sqli.probe_operator", CRITICAL);
    }
    let literal = |x: Option<&Tok<'_>>| matches!(x, Some(Tok::Num { .. } | Tok::Str { .. }));
    // `in (0,1)`, `values ('192.168.0.1', 'test')`: a tuple of literals as the whole value.
    if let Some(Tok::Word(w @ ("in" | "values"))) = t.first()
        && t.get(1) == Some(&Tok::LParen)
    {
        let mut k = 2;
        let mut n = 0;
        loop {
            if matches!(t.get(k), Some(Tok::Op("-" | "+"))) {
                k += 1;
            }
            let strs_ok = *w == "values" || matches!(t.get(k), Some(Tok::Num { .. }));
            if !literal(t.get(k)) || !strs_ok {
                break;
            }
            n += 1;
            k += 1;
            if t.get(k) != Some(&Tok::Comma) {
                break;
            }
            k += 1;
        }
        let end = matches!(t.get(k), None | Some(Tok::RParen | Tok::Comment))
            && matches!(t.get(k + 1), None | Some(Tok::Comment));
        if n >= 2 && end {
            hits.add(1, "sqli.probe_tuple", CRITICAL);
        }
    }
    // `) when 234 then`, `) or (`: a value that starts by closing the application's bracket
    // and goes on as SQL.
    if t.first() == Some(&Tok::RParen)
        && matches!(t.get(1), Some(Tok::Word(w)) if is_reserved(w) || matches!(*w, "when" | "then"))
    {
        hits.add(1, "sqli.bracket_breakout", CRITICAL);
    }
    // `a=b,1=1`, `'admin', '1'='1'`: a constant comparison closing a list.
    for (k, x) in t.iter().enumerate() {
        if *x == Tok::Comma
            && let Some((end, e)) = parse_expr(t, k + 1)
            && e.const_cmp
            && e.operands == 2
            && matches!(t.get(end), None | Some(Tok::Comment))
        {
            hits.add(1, "sqli.tautology", CRITICAL);
        }
    }
    // `17,23 order by 16`: numbers, then sorting by column position (finding the column count).
    let nums = t
        .iter()
        .take_while(|x| matches!(x, Tok::Num { .. } | Tok::Comma))
        .count();
    if nums > 0
        && t.get(nums) == Some(&Tok::Word("order"))
        && t.get(nums + 1) == Some(&Tok::Word("by"))
        && match t.get(nums + 2) {
            Some(Tok::Num { .. }) => true,
            // `1 order by ifnull(null,userid)`
            Some(Tok::Word(w)) => is_sql_only_function(w) && t.get(nums + 3) == Some(&Tok::LParen),
            _ => false,
        }
    {
        hits.add(1, "sqli.order_by_number", CRITICAL);
    }
    // `having 1=`: the start of a having clause on a constant.
    if t.first() == Some(&Tok::Word("having"))
        && literal(t.get(1))
        && matches!(t.get(2), Some(Tok::Op(op)) if is_cmp_op(op))
    {
        hits.add(1, "sqli.clause_fragment", CRITICAL);
    }
    // `something like '`: a pattern operator whose operand is a bare opening quote.
    if let [
        ..,
        Tok::Word("like" | "rlike" | "regexp" | "ilike" | "glob"),
        Tok::Str { lone: true, .. },
    ] = t
    {
        hits.add(1, "sqli.probe_operator", CRITICAL);
    }
}

/// A value that starts with a quote (closing the application's string at once) and continues
/// as SQL: `' union/`, `"alter a`, `` ` regexp ``, `' = #`. A quoted phrase that starts with a
/// logic word (`"And when the kids…`) is prose, so logic words alone do not count here.
fn quote_probe(s: &str, q: u8, t: &[Tok<'_>], hits: &mut Hits) {
    let rest = &t[1..];
    let one_quote = s.bytes().filter(|&c| c == q).count() == 1;
    let hit = match rest.first() {
        Some(Tok::Word(
            "union" | "select" | "alter" | "insert" | "update" | "delete" | "drop" | "create"
            | "truncate" | "exec" | "declare",
        )) => {
            // `'alter a`, `' union/`: the keyword and a stub. A stray quote before a title
            // (`"Select Medical`, `"Create your account`) goes on with real words.
            one_quote
                && rest.len() <= 2
                && match rest.get(1) {
                    None | Some(Tok::Op(_) | Tok::Other | Tok::Comment) => true,
                    Some(Tok::Word(w)) => w.len() == 1,
                    _ => false,
                }
        }
        Some(Tok::Op(_) | Tok::Other) => rest.get(1) == Some(&Tok::Comment),
        _ => false,
    };
    if hit || operator_only(rest) {
        hits.add(1, "sqli.quote_probe", CRITICAL);
    }
}

/// Every word literal of the rules above, sorted (a test keeps it complete and sorted).
const TRIGGER_WORDS: &[&str] = &[
    "abs",
    "aes_decrypt",
    "aes_encrypt",
    "against",
    "all",
    "all_tab_columns",
    "all_tables",
    "alter",
    "analyse",
    "analyze",
    "and",
    "any",
    "as",
    "asc",
    "ascii",
    "autocommit",
    "avg",
    "begin",
    "benchmark",
    "between",
    "bin",
    "binary",
    "bit_length",
    "by",
    "call",
    "case",
    "cast",
    "ceil",
    "ceiling",
    "char",
    "char_length",
    "checkpoint",
    "chr",
    "coalesce",
    "col_name",
    "collate",
    "concat",
    "concat_ws",
    "conv",
    "convert",
    "cot",
    "count",
    "create",
    "ctxsys",
    "current_database",
    "current_timestamp",
    "current_user",
    "data",
    "database",
    "datalength",
    "date",
    "day",
    "db",
    "db_name",
    "dbms_java",
    "dbms_lock",
    "dbms_pipe",
    "dbms_xmlgen",
    "dbo",
    "declare",
    "decode",
    "default",
    "delay",
    "delete",
    "desc",
    "distinct",
    "div",
    "do",
    "drop",
    "dual",
    "dumpfile",
    "else",
    "elt",
    "encode",
    "end",
    "escape",
    "except",
    "exec",
    "execute",
    "exists",
    "exp",
    "export_set",
    "extractvalue",
    "false",
    "field",
    "find_in_set",
    "floor",
    "for",
    "format",
    "from",
    "function",
    "geometrycollection",
    "getdate",
    "glob",
    "goto",
    "grant",
    "group",
    "group_concat",
    "handler",
    "has_dbaccess",
    "having",
    "hex",
    "host_name",
    "hour",
    "if",
    "ifnull",
    "ignore",
    "iif",
    "ilike",
    "immediate",
    "in",
    "index",
    "information_schema",
    "insert",
    "instr",
    "int",
    "intersect",
    "into",
    "is",
    "is_srvrolemember",
    "isnull",
    "join",
    "json_array",
    "json_extract",
    "json_keys",
    "json_search",
    "last_insert_id",
    "left",
    "len",
    "length",
    "like",
    "likelihood",
    "likely",
    "limit",
    "linestring",
    "ln",
    "lo_export",
    "lo_get",
    "lo_import",
    "load",
    "load_file",
    "local",
    "locate",
    "log",
    "login",
    "low_priority",
    "lower",
    "ltrim",
    "make_set",
    "master",
    "match",
    "max",
    "md5",
    "merge",
    "mid",
    "min",
    "minute",
    "mod",
    "month",
    "msdb",
    "msysaccessobjects",
    "msysobjects",
    "multilinestring",
    "multipoint",
    "multipolygon",
    "mysql",
    "mysql_history",
    "name_const",
    "nchar",
    "not",
    "notnull",
    "now",
    "null",
    "nullif",
    "nvarchar",
    "object_id",
    "object_name",
    "octet_length",
    "offset",
    "on",
    "or",
    "ord",
    "order",
    "outfile",
    "overlay",
    "password",
    "pg_catalog",
    "pg_database",
    "pg_ls_dir",
    "pg_read_file",
    "pg_shadow",
    "pg_sleep",
    "pg_user",
    "pi",
    "polygon",
    "position",
    "power",
    "procedure",
    "quarter",
    "quick",
    "quotename",
    "rand",
    "randomblob",
    "randomblob_",
    "rdb$database",
    "regexp",
    "replace",
    "reverse",
    "revoke",
    "right",
    "rlike",
    "role",
    "round",
    "row",
    "rtrim",
    "rtrim_",
    "schema",
    "second",
    "select",
    "session_user",
    "set",
    "sha1",
    "shutdown",
    "sign",
    "similar",
    "sleep",
    "some",
    "sounds",
    "sp_addlogin",
    "sp_configure",
    "sp_executesql",
    "sp_makewebtask",
    "sp_oacreate",
    "sp_password",
    "sql_no_cache",
    "sqlite_master",
    "sqlite_schema",
    "sqlite_temp_master",
    "sqrt",
    "starts_with",
    "straight_join",
    "strcmp",
    "substr",
    "substring",
    "substring_index",
    "sum",
    "suser_name",
    "sys",
    "sys_context",
    "sys_eval",
    "sys_exec",
    "syscat",
    "syscolumns",
    "sysdatabases",
    "sysdate",
    "sysibm",
    "sysobjects",
    "system_user",
    "sysusers",
    "table",
    "tempdb",
    "temporary",
    "then",
    "time",
    "timestamp",
    "to",
    "top",
    "transaction",
    "trigger",
    "trim",
    "true",
    "truncate",
    "try",
    "txid_current",
    "unhex",
    "unicode",
    "union",
    "unknown",
    "unlikely",
    "update",
    "updatexml",
    "upper",
    "user",
    "user_name",
    "user_tab_columns",
    "user_tables",
    "using",
    "utl_http",
    "utl_inaddr",
    "uuid",
    "v$version",
    "vacuum",
    "values",
    "varchar",
    "version",
    "view",
    "waitfor",
    "week",
    "weight_string",
    "when",
    "where",
    "with",
    "xml",
    "xmltype",
    "xor",
    "xp_cmdshell",
    "xp_dirtree",
    "xp_fileexist",
    "xp_regread",
    "xp_subdirs",
    "year",
];

/// FNV-1a of a word, for [`TRIGGER_BLOOM`].
const fn fnv(w: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < w.len() {
        h ^= w[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

/// An 8,192-bit Bloom filter of [`TRIGGER_WORDS`], two bits a word: most words of business text
/// are told apart from every rule's words by two bit tests.
const TRIGGER_BLOOM: [u64; 128] = {
    let mut bits = [0u64; 128];
    let mut i = 0;
    while i < TRIGGER_WORDS.len() {
        let h = fnv(TRIGGER_WORDS[i].as_bytes());
        let (a, b) = ((h & 8191) as usize, ((h >> 13) & 8191) as usize);
        bits[a >> 6] |= 1 << (a & 63);
        bits[b >> 6] |= 1 << (b & 63);
        i += 1;
    }
    bits
};

/// Whether `w` is a word some rule of this detector names (every word literal of the rules, and
/// the `xp_` / `sp_` procedure prefixes).
fn is_trigger_word(w: &str) -> bool {
    is_trigger_bytes(w.as_bytes())
}

/// [`is_trigger_word`] on bytes, for the fast path, which cuts words out of the value's bytes and
/// would otherwise check each piece is UTF-8 again.
fn is_trigger_bytes(w: &[u8]) -> bool {
    if w.starts_with(b"xp_") || w.starts_with(b"sp_") {
        return true;
    }
    let h = fnv(w);
    let (a, b) = ((h & 8191) as usize, ((h >> 13) & 8191) as usize);
    TRIGGER_BLOOM[a >> 6] & (1 << (a & 63)) != 0
        && TRIGGER_BLOOM[b >> 6] & (1 << (b & 63)) != 0
        && TRIGGER_WORDS
            .binary_search_by(|t| t.as_bytes().cmp(w))
            .is_ok()
}

/// Whether no rule can fire on `input`: it holds none of the bytes SQL syntax is made of (quotes
/// other than an apostrophe inside a word, operators, brackets, comment and statement markers), none of the two-byte operators whose
/// single bytes are common in business text (`--`, `&&`, `::`, `@@`, `/*`), no hex literal, and
/// none of the words the rules name. Names, titles, emails and most notes are such values; for
/// them the tokenizer and the rules are skipped, at paranoia 1 (higher levels also weigh
/// punctuation density). `tests::the_fast_path_changes_no_verdict` checks, over every evaluation
/// corpus, that skipping changes nothing.
fn cannot_match(input: &Input<'_>) -> bool {
    let p = input.profile;
    if p.any_byte(b"\"`;=<>|^~*()[]{}\\#!")
        || ["--", "&&", "::", ":=", "@@", "/*"]
            .iter()
            .any(|o| p.grams.has(input.text, o))
    {
        return false;
    }
    // An apostrophe inside a word (O'Brien, Jerry's, L'Oréal) closes no string an attacker
    // could use: what follows it is the rest of a word, not SQL.
    let b = input.text.as_bytes();
    if p.has_byte(b'\'')
        && !b.iter().enumerate().all(|(i, &c)| {
            c != b'\''
                || (i > 0
                    && b.get(i + 1)
                        .is_some_and(|&n| n.is_ascii_alphabetic() || n >= 0x80)
                    && (b[i - 1].is_ascii_alphabetic() || b[i - 1] >= 0x80))
        })
    {
        return false;
    }
    // Words as the tokenizer cuts them.
    b.split(|&c| !(super::is_word_byte(c) || c == b'$'))
        .filter(|w| !w.is_empty())
        .all(|w| !w.starts_with(b"0x") && !w.starts_with(b"0b") && !is_trigger_bytes(w))
}

/// MongoDB query operators: sent as a JSON key (`{"$ne": null}`) or a bracketed parameter name
/// (`user[$ne]=`), they turn the application's equality test into a comparison the attacker
/// chooses, so `{"password": {"$gt": ""}}` matches every password.
const NOSQL_OPERATORS: &[&str] = &[
    "$all",
    "$and",
    "$elemmatch",
    "$eq",
    "$exists",
    "$expr",
    "$function",
    "$gt",
    "$gte",
    "$in",
    "$jsonschema",
    "$lt",
    "$lte",
    "$mod",
    "$ne",
    "$nin",
    "$nor",
    "$not",
    "$or",
    "$regex",
    "$size",
    "$type",
    "$where",
];

/// Whether `s` uses a NoSQL operator the way a query document does: as a whole key, in
/// brackets (`[$ne]`), or quoted or braced before a colon (`"$gt":`, `{$where:`). A price
/// ("$in cash", "$100") is none of these.
fn nosql_operator(s: &str, kind: super::FieldKind) -> bool {
    if kind == super::FieldKind::Name && NOSQL_OPERATORS.contains(&s.trim()) {
        return true;
    }
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        if c != b'$' {
            return false;
        }
        let end = i
            + b[i..]
                .iter()
                .skip(1)
                .take_while(|c| c.is_ascii_alphabetic())
                .count()
            + 1;
        if !NOSQL_OPERATORS.contains(&&s[i..end]) {
            return false;
        }
        let before = i.checked_sub(1).map(|k| b[k]);
        let after = b[end..].iter().find(|c| !c.is_ascii_whitespace()).copied();
        match before {
            Some(b'[') => b.get(end) == Some(&b']'),
            Some(b'"' | b'\'') => {
                b.get(end) == Some(&b[i - 1]) && {
                    let rest = b[end + 1..].iter().find(|c| !c.is_ascii_whitespace());
                    rest == Some(&b':')
                }
            }
            Some(b'{') => after == Some(b':'),
            _ => false,
        }
    })
}

/// Whether the whole value is an integer at a boundary of 32- or 64-bit types (±1), or a float
/// whose exponent overflows or underflows a double: probes for overflow and wrap-around in the
/// code that parses the parameter, and for the float-parsing hang of some runtimes
/// (`2.2250738585072011e-308`). Ordinary numbers, phone numbers included, are not at a boundary.
fn boundary_number(s: &str) -> bool {
    let t = s.trim();
    let digits = t
        .strip_prefix('-')
        .or_else(|| t.strip_prefix('+'))
        .unwrap_or(t);
    if !digits.is_empty() && digits.len() <= 21 && digits.bytes().all(|c| c.is_ascii_digit()) {
        let Ok(n) = digits.parse::<u128>() else {
            return false;
        };
        return [31u32, 32, 63, 64]
            .iter()
            .any(|&k| (1u128 << k).abs_diff(n) <= 1);
    }
    let Some((mantissa, exp)) = digits.split_once(['e', 'E']) else {
        return false;
    };
    !mantissa.is_empty()
        && mantissa.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && mantissa.bytes().any(|c| c.is_ascii_digit())
        && exp
            .strip_prefix(['-', '+'])
            .unwrap_or(exp)
            .parse::<u32>()
            .is_ok_and(|e| e >= 308)
}

/// Runs the SQL injection rules on one value.
pub(crate) fn detect(input: &Input<'_>, hits: &mut Hits) {
    if input.profile.has_byte(b'$') && nosql_operator(input.text, input.kind) {
        hits.add(1, "sqli.nosql_operator", CRITICAL);
    }
    if input.text.len() <= 40
        && input
            .text
            .as_bytes()
            .first()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b' '))
        && boundary_number(input.text)
    {
        hits.add(1, "sqli.boundary_number", CRITICAL);
    }
    // Higher paranoia levels also weigh punctuation density, which the fast path does not.
    if !(hits.paranoia <= 1 && cannot_match(input)) {
        detect_all(input, hits);
    }
    // `UNI/**/ON SEL/**/ECT`: comments inside keywords, for filters that delete comments and
    // then see the keyword the attacker meant. Read again with such comments removed.
    if input.profile.grams.has(input.text, "/*") {
        let joined = join_split_keywords(input.text);
        if joined != input.text {
            let profile = super::Profile::new(&joined);
            let view = Input {
                text: &joined,
                had_null: input.had_null,
                kind: input.kind,
                profile: &profile,
            };
            detect_all(&view, hits);
        }
    }
    // `+` standing for a space: a form-encoded payload that reaches the query decoded once less
    // than the attacker meant (`1'+or+1=1--`, `'+union+select+…`). When SQL keywords sit between
    // pluses, the value is read again with spaces; "C++ Developer" and "+1 555" have none.
    if input.profile.has_byte(b'+') && plus_spaced(input.text) {
        let spaced = input.text.replace('+', " ");
        let profile = super::Profile::new(&spaced);
        let view = Input {
            text: &spaced,
            had_null: input.had_null,
            kind: input.kind,
            profile: &profile,
        };
        if !(hits.paranoia <= 1 && cannot_match(&view)) {
            detect_all(&view, hits);
        }
    }
}

/// `s` with every comment that sits inside a word (`uni/**/on`) removed.
fn join_split_keywords(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/'
            && b.get(i + 1) == Some(&b'*')
            && i > 0
            && b[i - 1].is_ascii_alphabetic()
            && let Some(close) = s[i + 2..].find("*/")
        {
            let after = i + 2 + close + 2;
            if b.get(after).is_some_and(u8::is_ascii_alphabetic) {
                i = after;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Whether `s` has an SQL keyword glued between `+` signs (`+or+`, `+union+select(`).
fn plus_spaced(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        if c != b'+' {
            return false;
        }
        let word: String = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic() || **c == b'_')
            .map(|&c| char::from(c))
            .collect();
        let after = b.get(i + 1 + word.len());
        !word.is_empty()
            && matches!(after, None | Some(b'+' | b'(' | b'\'' | b'"'))
            && matches!(
                word.as_str(),
                "or" | "and"
                    | "union"
                    | "select"
                    | "order"
                    | "group"
                    | "having"
                    | "waitfor"
                    | "into"
                    | "procedure"
                    | "exists"
                    | "rlike"
                    | "like"
                    | "from"
                    | "where"
                    | "sleep"
                    | "benchmark"
                    | "delay"
                    | "xor"
                    | "div"
                    | "not"
                    | "limit"
            )
    })
}

/// Every rule, without the fast path.
fn detect_all(input: &Input<'_>, hits: &mut Hits) {
    let s = input.text;
    let mut toks = Vec::with_capacity(32);
    let mut lex = Lex::default();

    // Bare (number) context.
    tokenize(s, None, &mut toks, &mut lex);
    if !toks.is_empty() {
        anywhere_rules(&toks, hits);
        // The application's literal: a leading number expression or a single word.
        let mut i = 0;
        let mut saw_num = false;
        while let Some(t) = toks.get(i) {
            match t {
                Tok::Num { .. } => saw_num = true,
                Tok::Op("-" | "+" | "*" | "/") | Tok::LParen | Tok::Dot => {}
                _ => break,
            }
            i += 1;
        }
        // The whole value is a constant comparison: `1=1`, `42 like 42`, `'a'='a'`.
        // The whole value parsed as one expression, shared by the rules below.
        let whole = parse_expr(&toks, 0);
        if let Some((end, e)) = whole.as_ref().map(|(end, e)| (*end, e))
            && e.const_cmp
            && e.operands == 2
            && matches!(toks.get(end), None | Some(Tok::Comment))
        {
            hits.add(1, "sqli.tautology", CRITICAL);
        }
        if let Some((end, e)) = whole.as_ref().map(|(end, e)| (*end, e)) {
            let cut = toks.get(end) == Some(&Tok::Comment);
            // `( (select 'a' or 'b') ) --`, `( binary ( 'b') ) --`: a parenthesised SQL expression
            // whose query is cut off. `(optional) -- see notes` holds no SQL operand.
            if cut
                && toks.first() == Some(&Tok::LParen)
                && (e.literals > 0
                    || e.funcs > 0
                    || e.select
                    || e.cmp
                    || (e.ops > 0 && lex.comment_tail_words.unwrap_or(0) <= 1))
            {
                hits.add(1, "sqli.expression_comment", CRITICAL);
            }
            // The whole value is one boolean expression with a constant comparison:
            // `(hope) and 8=3`, `1*1 and 'a'='b'--`.
            let logic = toks.iter().take(end).any(|x| is_logic(*x));
            // `1 or (1 or 1)--`: constants joined by logic, cut off.
            let const_logic = cut && e.idents == 0 && e.funcs == 0 && e.literals >= 2;
            // `pi() and cos(pi())=-1`: functions of constants compared, no names at all.
            let func_cmp = e.cmp && e.idents == 0 && e.funcs > 0;
            if (cut || end == toks.len()) && logic && (e.const_cmp || const_logic || func_cmp) {
                hits.add(1, "sqli.tautology", CRITICAL);
            }
        }
        clause_fragment(&toks, hits);
        probe_rules(s, &toks, hits);
        // `1*1/*`, `1 * 1 --`: constant arithmetic whose query is cut off.
        if let Some((end, e)) = whole.as_ref().map(|(end, e)| (*end, e))
            && toks.get(end) == Some(&Tok::Comment)
            && e.ops > 0
            && e.idents == 0
            && e.funcs == 0
            && e.consts >= 2
            && lex.comment_tail_words.unwrap_or(0) <= 1
        {
            hits.add(1, "sqli.expression_comment", CRITICAL);
        }
        // A complete `case … when … then … end` expression as the whole value.
        if toks.first() == Some(&Tok::Word("case"))
            && matches!(toks.last(), Some(Tok::Word("end")))
            && toks.contains(&Tok::Word("when"))
            && toks.contains(&Tok::Word("then"))
        {
            hits.add(1, "sqli.case_when", CRITICAL);
        }
        // A leading string literal, then a boolean: `'hi' or 'x'='x';` (the value sent where the
        // application expects an unquoted operand).
        if let Some(Tok::Str { closed: true, .. }) = toks.first()
            && toks.get(1).is_some_and(|t| is_logic(*t))
            && parse_expr(&toks, 2).is_some_and(|(_, e)| e.const_cmp || e.sql_func || e.select)
        {
            hits.add(1, "sqli.breakout_boolean", CRITICAL);
        }
        // A leading string literal compared with something: `'x'!='y`.
        if let Some(Tok::Str { closed: true, .. }) = toks.first()
            && let Some(Tok::Op(op)) = toks.get(1)
            && is_cmp_op(op)
            && parse_expr(&toks, 2).is_some()
        {
            hits.add(1, "sqli.breakout_comparison", CRITICAL);
        }
        let prefix = if saw_num {
            Some(PrefixKind::Number)
        } else if i == 0 && matches!(toks.first(), Some(Tok::Word(w)) if !is_reserved(w)) {
            i = 1;
            Some(PrefixKind::Word)
        } else if i == 0 && is_logic(toks[0]) {
            Some(PrefixKind::Empty)
        } else {
            None
        };
        if let Some(p) = prefix {
            breakout_rules(&toks, i, p, lex.comment_tail_words, hits);
        }
    }

    // Quoted contexts.
    for q in [b'\'', b'"', b'`'] {
        if !s.as_bytes().contains(&q) {
            continue;
        }
        tokenize(s, Some(q), &mut toks, &mut lex);
        if let Some(Tok::Prefix {
            spaced,
            escaped,
            empty,
            one_word,
        }) = toks.first().copied()
        {
            if escaped && toks.get(1).is_some_and(|t| is_logic(*t)) {
                hits.add(1, "sqli.escaped_quote", CRITICAL);
            }
            // A backtick quotes an identifier, and identifiers are one word: prose before a
            // backtick ("we support `select * from t`") is a code span, not a breakout; so are
            // backticks in pairs ("Says `DROP TABLE` scares them"), where a breakout leaves one
            // unmatched.
            let backticks = s.bytes().filter(|&c| c == b'`').count();
            if q == b'`' && (!(empty || one_word) || backticks % 2 == 0) {
                continue;
            }
            breakout_rules(
                &toks,
                1,
                PrefixKind::Quote {
                    spaced,
                    empty,
                    one_word,
                    single: q == b'\'',
                },
                lex.comment_tail_words,
                hits,
            );
            anywhere_rules(&toks, hits);
            alias_from(&toks, hits);
            if empty {
                quote_probe(s, q, &toks, hits);
            }
        }
    }

    if lex.versioned_comment {
        hits.add(1, "sqli.versioned_comment", CRITICAL);
    }
    if lex.bare_exponent {
        hits.add(1, "sqli.bare_exponent", CRITICAL);
    }
    if lex.inline_comments > 0 && hits.list.iter().any(|h| h.score >= WARNING) {
        hits.add(2, "sqli.comment_obfuscation", NOTICE);
    }

    // Meta-character density (CRS 942430 family): many SQL syntax characters in one value.
    // Not for headers: user agents are full of `(;)` by design.
    if hits.paranoia >= 2 && input.kind != crate::extract::FieldKind::Header {
        let special = s
            .bytes()
            .filter(|b| {
                matches!(
                    b,
                    b'\''
                        | b'"'
                        | b'`'
                        | b';'
                        | b'('
                        | b')'
                        | b'#'
                        | b'='
                        | b'@'
                        | b'!'
                        | b'|'
                        | b'^'
                        | b'~'
                        | b'*'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'-'
                        | b'{'
                        | b'}'
                )
            })
            .count();
        if special >= 12 {
            hits.add(2, "sqli.meta_characters", WARNING);
        }
        if special >= 6 {
            hits.add(3, "sqli.meta_characters", WARNING);
        }
        if special >= 2 && s.bytes().any(|b| b == b'\'' || b == b'"' || b == b'`') {
            hits.add(4, "sqli.meta_characters", WARNING);
        }
    }
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

    /// Every word literal the rules use is a trigger word, so the fast path cannot skip a value
    /// a rule would look at.
    #[test]
    fn every_word_the_rules_name_is_a_trigger_word() {
        let src = include_str!("sqli.rs");
        let code = &src[..src.find("#[cfg(test)]").unwrap()];
        let mut n = 0;
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            for lit in line.split('"').skip(1).step_by(2) {
                let word = !lit.is_empty()
                    && lit
                        .bytes()
                        .next()
                        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                    && lit.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'$'
                    });
                if word {
                    n += 1;
                    assert!(
                        is_trigger_word(lit),
                        "{lit:?} is missing from is_trigger_word"
                    );
                }
            }
        }
        assert!(n > 300, "{n}");
        assert!(
            TRIGGER_WORDS.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
    }

    /// The fast path gives the same verdict as every rule, on every value of the evaluation
    /// corpora (attacks and business text), at paranoia 1 where it applies.
    #[test]
    fn the_fast_path_changes_no_verdict() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/waf");
        let corpus = crate::eval::Corpus::load(&dir).expect("the evaluation corpus");
        let mut values: Vec<String> = Vec::new();
        let mut push_req = |r: &crate::eval::OwnedRequest| {
            let mut sink_values = crate::extract::values_of(r);
            values.append(&mut sink_values);
        };
        corpus.crs.iter().for_each(|c| push_req(&c.request));
        corpus.li_sqli.iter().for_each(|c| push_req(&c.request));
        corpus.li_xss.iter().for_each(|c| push_req(&c.request));
        corpus.li_benign.iter().for_each(|c| push_req(&c.request));
        corpus.b2b.iter().for_each(|c| push_req(&c.request));
        let mut skipped = 0;
        for raw in &values {
            let n = crate::normalize::normalize(raw, 3);
            let profile = super::super::Profile::new(&n.text);
            let input = Input {
                text: &n.text,
                had_null: n.had_null,
                kind: FieldKind::Value,
                profile: &profile,
            };
            if !cannot_match(&input) {
                continue;
            }
            skipped += 1;
            let mut all = Hits::new(1);
            detect_all(&input, &mut all);
            assert!(all.list.is_empty(), "{raw:?}: {:?}", all.list);
        }
        assert!(
            skipped > 1000,
            "the fast path is taken: {skipped} of {}",
            values.len()
        );
    }

    #[test]
    fn attacks() {
        for a in [
            "a' << 'b",
            "' div '",
            "a' sounds like 'b",
            "' or '",
            "aa'!=ascii(1)#",
            " ( binary cos ( 'a' or 'b') )  --",
            " ( 1 * @a )  --",
            "(hope)*1 and 8=3",
            "1 or (1 or 1)--",
            "-1#x\n union (select id from users limit 1,1)",
            "-234  union",
            "-1 --x",
            "select -1,sin('1'),2 from bar where",
            "case 1 when 2 then 2 end",
            "x' and email not similar to id--",
            "1' or '1'='1",
            "' or 1=1--",
            "admin'--",
            "1 OR 1=1",
            "-1 union select 1,2,3",
            "1; drop table users",
            "x'; DROP TABLE users; --",
            "1' and sleep(5)#",
            "1 and 1=0 union/**/select user()",
            "' union select null,@@version--",
            "1;waitfor delay '0:0:5'--",
            "') or ('a'='a",
            "1 and ascii(substring((select password from users limit 1),1,1))>64",
            "/*!50000union*/ /*!50000select*/ 1",
            "SELECT * FROM users WHERE id = 1",
            "%27%20OR%201%3D1--",
            "1' ORDER BY 3--",
            "1 having 1=1",
            "' or ''='",
            "\\' or 1=1 --",
            // Probes: whole values that are a fragment of SQL.
            "sleep(",
            "CAST(",
            "length||!!$(",
            "IN/**/(",
            "quarter. (",
            "<>",
            "||",
            "is not null",
            ") like (",
            ") when 234 then",
            "in (0,1)",
            " IN (815914, 815913)\n",
            "VALUES ('192.168.0.1', 'test')",
            "ordeR by",
            "a=b,1=1",
            "HAVING 1=",
            "something LIKE '",
            "'alter a",
            "\" UNION A",
            "` REGEXP ",
            "' = # '",
            "if(1234=",
            ";truncate[xx",
            "except values(1,2)",
            "ascii(substring(passwd,1,1))-10",
            "1234''z' and (3=pi())--",
            "AND CONNECTION_ID()=CONNECTION_ID()",
            "17,23 order by 16",
            "1/1/**/union",
            "';if 1=1 drop table users-- -a",
            // NoSQL operators, integer boundaries, JSON operators, bare exponents, merge.
            "{\"password\": {\"$gt\": \"\"}}",
            "user[$ne]=x",
            "{$where: 'sleep(100)'}",
            "2147483648",
            "-9223372036854775809",
            "18446744073709551615",
            "1e309",
            "1' and '{}'::jsonb @> '{\"role\":\"admin\"}'::jsonb--",
            "1.e(select 1)",
            "' or match(a) against('b')--",
            "merge into users using dual on (1=1) when matched then delete",
        ] {
            assert!(score(a, 1) >= 5, "missed {a:?}: {}", score(a, 1));
        }
    }

    #[test]
    fn business_text() {
        for b in [
            "browning \"like\"",
            "\"*\"",
            "(optional) -- see notes",
            "(Mon - Fri) -- closed on weekends",
            "Option 1 -- the cheapest one",
            "Item #1\nItem #2\nsee the order by Friday",
            "Rock 'n' roll",
            "O'Brien",
            "name:O'Brien",
            "L'Oréal",
            "Select Medical",
            "Drop Zone Inc",
            "please update the order; delete the old one",
            "drop me a line; select the best option",
            "1=1 means identical",
            "asked: where 1=1 in their BI tool? (joke about filters)",
            "Their team wants to select from a union of vendors and drop the slowest one",
            "Met at SaaStr; follow up re: pricing -- wants 10% off?",
            "Said: 'call me after 5pm ET'",
            "Budget >= $50k; timeline < 3 months",
            "Paid $in cash; $gt 10k deal",
            "Pricing: {$ne plan} TBD",
            "2147483",
            "4155550123",
            "1e3 units",
            "v1.e2 release (beta)",
            "merge into one account",
            "std::vector @> 1",
            "director OR head of marketing",
            "industry:software AND size:50-200",
            "Database Administrator (SQL Server)",
            "Interested in the 'Enterprise' plan (annual)",
            "Ben & Jerry's",
            "Toys\"R\"Us",
            "C# Developer",
            "10 OR LESS",
            "8 OR 9 WLV",
            "Please select pair #1",
            "O'connors UNION selected a few friendsf from a",
            "USPS 1-3 Day (USPS doesn't guarantee 3 day arrival)",
            "Time (EST)",
            "Count (approx.)",
            "Interested in (CRM, ERP)",
            "in (2) weeks",
            "Values (integrity, trust)",
            "\"And when the kids are old",
            "\"Select Medical",
            "\"Create your account",
            "'Union' rep",
            "\"Update\" pending",
            ") see above",
            "order by phone",
            "1, 2 order by priority",
            "Q3 -> Q4",
            "like",
            "Format: (PDF or CSV)",
            "if (2) is late, call",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ] {
            assert!(score(b, 1) < 5, "false positive {b:?}: {}", score(b, 1));
        }
    }
}
