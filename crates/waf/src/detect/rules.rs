//! Every rule the detectors can report, with the attack technique it covers. A rule exists
//! because of a technique, never because one corpus line needed it: this table is where that is
//! written down, `docs/waf.md` prints it, and exclusions in `waf-rules.json` may only name rules
//! that are here (a misspelt rule would silently exclude nothing).

use crate::config::Class;

/// One rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// Stable id, as reported in `Match::rule`.
    pub id: &'static str,
    /// Its class.
    pub class: Class,
    /// The technique it recognises.
    pub technique: &'static str,
}

const fn r(id: &'static str, class: Class, technique: &'static str) -> RuleInfo {
    RuleInfo {
        id,
        class,
        technique,
    }
}

use Class::{CommandInjection as C, PathTraversal as P, Sqli as S, Xss as X};

/// The rules, by class.
pub const RULES: &[RuleInfo] = &[
    // SQL injection: each value is tokenized as if inserted bare, in single and in double quotes.
    r(
        "sqli.alias_from",
        S,
        "a select list's alias followed by its table (`` as `a` from ``), the middle of an injected query",
    ),
    r(
        "sqli.breakout_boolean",
        S,
        "a quote or number breakout followed by a boolean operator and an operand (`' or 1=1`, `1 and 2>1`)",
    ),
    r(
        "sqli.bare_exponent",
        S,
        "an exponent marker with no exponent glued to a bracket (`1.e(`), which MySQL reads as a number and filters miss",
    ),
    r(
        "sqli.boolean_expression",
        S,
        "a boolean SQL expression over literals with no breakout (higher paranoia)",
    ),
    r(
        "sqli.boundary_number",
        S,
        "a whole value at a 32/64-bit integer boundary or a double's exponent limit (`2147483648`, `1e309`): overflow probes",
    ),
    r(
        "sqli.bracket_breakout",
        S,
        "closing the application's bracket after a literal and continuing as SQL (`1) or (1=1`)",
    ),
    r(
        "sqli.breakout_clause",
        S,
        "a breakout followed by a clause keyword that continues the query (`' order by 3`, `' group by`)",
    ),
    r(
        "sqli.breakout_comment",
        S,
        "a breakout cut off by a comment so the rest of the query is ignored (`admin'--`, `'#`)",
    ),
    r(
        "sqli.breakout_comparison",
        S,
        "a breakout followed by a comparison of SQL values",
    ),
    r(
        "sqli.breakout_expression",
        S,
        "a breakout followed by a well-formed SQL expression to the end of the value",
    ),
    r(
        "sqli.breakout_keyword",
        S,
        "a keyword glued to the breakout quote (`'union`, `'like`), higher paranoia",
    ),
    r(
        "sqli.breakout_operator",
        S,
        "a breakout followed by an SQL operator whose operand balances the application's own closing quote (`' || '`)",
    ),
    r(
        "sqli.breakout_statement",
        S,
        "a breakout followed by a complete statement (`'; drop table t`)",
    ),
    r(
        "sqli.breakout_subquery",
        S,
        "a breakout followed by a sub-select (`' and (select …)`)",
    ),
    r(
        "sqli.breakout_terminator",
        S,
        "a breakout that ends the statement with `;`",
    ),
    r(
        "sqli.breakout_union",
        S,
        "a breakout followed by `union [all] select` (union-based extraction)",
    ),
    r(
        "sqli.case_when",
        S,
        "`case when … then` conditional expressions used for blind inference",
    ),
    r(
        "sqli.clause_fragment",
        S,
        "a value that is the tail of a query: a clause keyword continued as that clause (`having count(*) > 1`)",
    ),
    r(
        "sqli.comment_obfuscation",
        S,
        "inline comments inside or between keywords to dodge filters (`un/**/ion`, `sel/*x*/ect`)",
    ),
    r(
        "sqli.conditional",
        S,
        "conditional functions over a comparison (`if(1=1,…)`, `iif(`)",
    ),
    r(
        "sqli.escaped_quote",
        S,
        "a backslash-escaped quote used to unbalance the application's escaping (`\\'`)",
    ),
    r(
        "sqli.expression_comment",
        S,
        "an SQL expression ended by a comment",
    ),
    r(
        "sqli.file_write",
        S,
        "writing a file from the database server (`into outfile`, `into dumpfile`)",
    ),
    r(
        "sqli.function_call",
        S,
        "a call to a common SQL function (higher paranoia)",
    ),
    r(
        "sqli.having",
        S,
        "`having` with a condition (error-based column enumeration)",
    ),
    r(
        "sqli.hex_literal",
        S,
        "long hexadecimal literals that encode strings (`0x61646d696e`)",
    ),
    r(
        "sqli.meta_characters",
        S,
        "runs of SQL meta-characters with no text between (higher paranoia)",
    ),
    r(
        "sqli.number_comment",
        S,
        "a number followed by a comment (`1--`, `1#`): numeric-context truncation",
    ),
    r(
        "sqli.nosql_operator",
        S,
        "a MongoDB query operator as a key, in brackets or before a colon (`{\"$ne\": null}`, `user[$ne]=`)",
    ),
    r(
        "sqli.operator",
        S,
        "SQL-only operators (`<=>`, `||` between literals), higher paranoia",
    ),
    r(
        "sqli.order_by",
        S,
        "`order by` with a column (higher paranoia)",
    ),
    r(
        "sqli.order_by_number",
        S,
        "`order by <n>`: column-count probing",
    ),
    r(
        "sqli.probe_call",
        S,
        "a whole value that is an SQL function call left open (`sleep(`, `cast(`)",
    ),
    r(
        "sqli.probe_operator",
        S,
        "a whole value that is a lone SQL operator (`<>`, `is null`), as scanners send",
    ),
    r(
        "sqli.probe_tuple",
        S,
        "a whole value that is `in (1,2,3)`-style tuple syntax",
    ),
    r(
        "sqli.quote_probe",
        S,
        "unbalanced quotes with SQL punctuation only, as error-probing scanners send",
    ),
    r(
        "sqli.schema_probe",
        S,
        "reads of the catalog (`information_schema`, `sysobjects`, `pg_catalog`, `sqlite_master`)",
    ),
    r(
        "sqli.select_keyword",
        S,
        "`select` followed by a name (highest paranoia)",
    ),
    r(
        "sqli.select_statement",
        S,
        "a well-formed `select` list with `from` (data extraction)",
    ),
    r(
        "sqli.sql_function",
        S,
        "functions only SQL has, with SQL-shaped arguments (`concat(0x7e,`, `extractvalue(`, `load_file(`)",
    ),
    r(
        "sqli.stacked_query",
        S,
        "`;` followed by a new statement (stacked queries)",
    ),
    r(
        "sqli.statement",
        S,
        "a complete statement at the start of a value (`drop table t`, `exec xp_cmdshell`)",
    ),
    r(
        "sqli.statement_value",
        S,
        "a value that opens with a complete statement: a query sent as the value, not prose about one",
    ),
    r(
        "sqli.system_variable",
        S,
        "server variables (`@@version`, `@@datadir`)",
    ),
    r(
        "sqli.tautology",
        S,
        "an always-true comparison of literals (`'a'='a'`, `1=1`) in a boolean position",
    ),
    r(
        "sqli.time_delay",
        S,
        "time-based blind injection (`sleep(5)`, `benchmark(`, `pg_sleep(`, `waitfor delay`)",
    ),
    r(
        "sqli.union_select",
        S,
        "`union [all] select` with a select list (union-based extraction)",
    ),
    r(
        "sqli.versioned_comment",
        S,
        "MySQL versioned comments that execute their content (`/*!50000select*/`)",
    ),
    // XSS: an HTML tokenizer and a JavaScript-sink view of the value.
    r(
        "xss.comment_close",
        X,
        "closing an HTML comment or CDATA section to escape into markup (`-->`)",
    ),
    r(
        "xss.css_behaviour",
        X,
        "CSS `behavior:`/`-moz-binding` that binds script to elements",
    ),
    r(
        "xss.css_expression",
        X,
        "CSS `expression(` (script in style)",
    ),
    r(
        "xss.css_import",
        X,
        "CSS `@import` of a script or remote sheet",
    ),
    r(
        "xss.dangerous_attribute",
        X,
        "attributes that load or run content (`srcdoc`, `formaction`, `xlink:href`)",
    ),
    r(
        "xss.dangerous_tag",
        X,
        "tags that run or embed active content (`<script`, `<iframe`, `<object`, `<embed`, `<svg`, `<math`)",
    ),
    r(
        "xss.data_url",
        X,
        "`data:` URLs with HTML or script media types",
    ),
    r(
        "xss.dom_access",
        X,
        "script reaching the DOM's secrets (`document.cookie`, `document.domain`, `window.location`)",
    ),
    r(
        "xss.event_handler",
        X,
        "an event-handler attribute inside a tag (`onerror=`, `onload=`, any `on*`)",
    ),
    r(
        "xss.html_tag",
        X,
        "an HTML tag of any name (higher paranoia)",
    ),
    r(
        "xss.js_sink",
        X,
        "calls to JavaScript execution sinks (`eval(`, `alert(`, `setTimeout('…')`, `Function(`)",
    ),
    r("xss.jsfuck", X, "JavaScript written with `[]()!+` only"),
    r(
        "xss.markup_declaration",
        X,
        "markup declarations (`<!doctype`, `<!entity`, `<?xml-stylesheet`)",
    ),
    r(
        "xss.obfuscated_tag",
        X,
        "tags split or padded to dodge filters (`<scr<script>ipt>`, `</ script>`)",
    ),
    r(
        "xss.script_url",
        X,
        "script URLs in any attribute or on their own (`javascript:`, `vbscript:`, `livescript:`)",
    ),
    r(
        "xss.style_attribute",
        X,
        "`style` attributes with active CSS",
    ),
    r("xss.utf7", X, "UTF-7 encoded markup (`+ADw-script+AD4-`)"),
    // Path traversal: read through every decoding of `.`, `/` and `\`.
    r(
        "path.admin_share",
        P,
        "Windows administrative shares by UNC path (`\\\\host\\c$\\`)",
    ),
    r("path.file_url", P, "`file:` URLs"),
    r(
        "path.null_byte",
        P,
        "a NUL byte that truncates a file name (`…/etc/passwd%00.png`)",
    ),
    r(
        "path.relative_path",
        P,
        "a leading `../` (one level; higher paranoia)",
    ),
    r(
        "path.sensitive_file",
        P,
        "naming an operating system or application secret (`/etc/passwd`, `win.ini`, `.ssh/id_rsa`)",
    ),
    r(
        "path.sensitive_path",
        P,
        "a value that is nothing but a path to a system secret (`/etc/passwd`, `file:///c:/boot.ini`)",
    ),
    r(
        "path.servlet_traversal",
        P,
        "`..;/`: servlet path parameters used to climb",
    ),
    r(
        "path.traversal",
        P,
        "climbing out of a directory: repeated `../` (or `..\\`), in any encoding",
    ),
    r(
        "path.windows_absolute",
        P,
        "absolute Windows paths to system directories (`c:\\windows\\`)",
    ),
    // Command injection: a separator, then a command in command position.
    r(
        "cmd.arithmetic_expansion",
        C,
        "shell arithmetic expansion `$((…))`",
    ),
    r(
        "cmd.binary_path",
        C,
        "absolute paths to shells and tools (`/bin/sh`, `/usr/bin/id`)",
    ),
    r(
        "cmd.brace_expansion",
        C,
        "brace expansion that builds a command without spaces (`{cat,/etc/passwd}`)",
    ),
    r(
        "cmd.chained_command",
        C,
        "a shell separator (`;`, `|`, `&&`, newline, backtick) followed by a command with arguments",
    ),
    r(
        "cmd.command_line",
        C,
        "a value that is a command line: a command with shell arguments (flags, paths, redirections)",
    ),
    r("cmd.dev_tcp", C, "bash `/dev/tcp/host/port` reverse shells"),
    r(
        "cmd.exe",
        C,
        "Windows command interpreters and their switches (`cmd /c`, `powershell -enc`)",
    ),
    r(
        "cmd.exec_function",
        C,
        "a language's shell call with a string argument (`system('id')`, `shell_exec(`, `os.system(`, `Runtime.getRuntime().exec(`)",
    ),
    r(
        "cmd.expression_injection",
        C,
        "template and expression-language evaluation (`${…}` with calls, `#{…}`)",
    ),
    r(
        "cmd.glob_path",
        C,
        "wildcards standing for a path (`/???/c?t`, `/e*/p*d`)",
    ),
    r(
        "cmd.here_string",
        C,
        "here-strings and here-docs feeding a command (`<<<`)",
    ),
    r(
        "cmd.mail_injection",
        C,
        "IMAP/SMTP command injection through CR-LF",
    ),
    r(
        "cmd.powershell",
        C,
        "a PowerShell cmdlet that runs code, fetches a payload or reads files (`IEX(New-Object Net.WebClient)`, `Start-Process`)",
    ),
    r(
        "cmd.server_side_include",
        C,
        "server-side include directives (`<!--#exec cmd=`, `<!--#include virtual=`)",
    ),
    r(
        "cmd.shellshock",
        C,
        "Shellshock function definitions (`() { :; };`)",
    ),
    r(
        "cmd.sqlite_shell",
        C,
        "SQLite shell dot commands that run a program (`.shell id`, `.system ls`)",
    ),
    r(
        "cmd.substitution",
        C,
        "command substitution (`$(…)`, backticks) around a command",
    ),
    r(
        "cmd.variable_expansion",
        C,
        "variables used to split or hide a command (`$IFS`, `${PATH:0:1}`)",
    ),
    r(
        "cmd.windows",
        C,
        "Windows shell constructs (`%COMSPEC%`, `&` chains to `dir`, `type`)",
    ),
];

/// The rule `id`, when there is one.
#[must_use]
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule a detector can add is in the table, and the table names no rule that does not
    /// exist: the sources are read for `hits.add(…, "class.rule", …)`.
    #[test]
    fn the_table_is_the_detectors_rules() {
        let sources = [
            include_str!("sqli.rs"),
            include_str!("xss.rs"),
            include_str!("traversal.rs"),
            include_str!("cmdi.rs"),
        ];
        let mut used = std::collections::BTreeSet::new();
        for src in sources {
            for (i, _) in src.match_indices('"') {
                let rest = &src[i + 1..];
                let Some(end) = rest.find('"') else { continue };
                let id = &rest[..end];
                let prefix_ok = ["sqli.", "xss.", "path.", "cmd."]
                    .iter()
                    .any(|p| id.starts_with(p));
                if prefix_ok
                    && id.len() > 5
                    && id.bytes().all(|b| {
                        b.is_ascii_lowercase() || b == b'.' || b == b'_' || b.is_ascii_digit()
                    })
                    && !id.ends_with(".rs")
                {
                    used.insert(id.to_owned());
                }
            }
        }
        for id in &used {
            assert!(
                rule(id).is_some(),
                "{id} is reported by a detector but not in RULES"
            );
        }
        for r in RULES {
            assert!(
                used.contains(r.id),
                "{} is in RULES but no detector reports it",
                r.id
            );
            assert!(!r.technique.is_empty());
        }
        let docs = include_str!("../../../../docs/waf.md");
        for r in RULES {
            assert!(
                docs.contains(&format!(
                    "| `{}` | {} |",
                    r.id,
                    r.technique.replace('|', "\\|")
                )),
                "docs/waf.md does not list {} with its technique as in RULES",
                r.id
            );
        }
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len(), "each rule once");
    }
}
