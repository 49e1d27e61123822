#!/usr/bin/env python3
"""Grows LeadGen's benign WAF corpus with the data our users actually type.

Writes two files in the format of `benign-b2b.jsonl` (method, uri, content_type, body, hard):

  b2b-grown-dev.jsonl        tuned on, like ../shared/data/waf
  b2b-grown-validation.jsonl never tuned on: a held-out check of the same kinds

The two are built from disjoint halves of every vocabulary list below (each list is split by
position, even/odd), so a rule changed to pass a dev line cannot be passing the validation line
with the same words. The vocabulary is the class of input, not the lines of any corpus: company
names and job titles that contain words attack detectors look for (Exec, Script, Union, Select,
Drop, Shell, Delete, Alert…), notes with comparison operators, quotes, semicolons, dashes and
paths, international names, CSV imports with those cells, searches, and campaign templates.

Deterministic: `python3 grow_benign.py` always writes the same files.
"""

import csv
import io
import json
import random
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---- vocabulary (each list is split even/odd between dev and validation) ----

COMPANY_WORDS = [
    "Exec", "Script", "Union", "Select", "Drop", "Insert", "Update", "Delete", "Table", "Order",
    "Group", "Having", "Where", "Join", "Alert", "Prompt", "Confirm", "Eval", "System", "Shell",
    "Bash", "Echo", "Ping", "Curl", "Java", "Python", "Node", "Ruby", "Perl", "Sleep", "Benchmark",
    "Wait", "Delay", "Char", "Concat", "Null", "True", "Cast", "Convert", "Admin", "Root", "Proc",
    "Document", "Window", "Location", "Cookie", "Frame", "Image", "Vector", "Style", "Expression",
    "Load", "Error", "Focus", "Mouse", "Print", "Import", "Export", "Exit", "Kill", "Chmod",
    "Sudo", "Grep", "Awk", "Netcat", "Telnet", "Socket", "Pipe", "Fork", "Spawn", "Process",
    "Command", "Control", "Console", "Terminal", "Kernel", "Boot", "Config", "Registry", "Batch",
    "Macro", "Query", "Index", "Schema", "Cursor", "Trigger", "Commit", "Rollback", "Grant",
    "Revoke", "Declare", "Execute", "Truncate", "Merge", "Limit", "Offset", "Between", "Exists",
    "Case", "Else", "Begin", "End", "Handler", "Object", "Embed", "Applet", "Form", "Input",
    "Button", "Action", "Source", "Target", "Base", "Meta", "Link", "Anchor", "Path", "Home",
    "Var", "Temp", "Windows", "Unix", "Linux", "Passport", "Password", "Token", "Session",
    "Horizon", "Summit", "Cobalt", "Nimbus", "Atlas", "Beacon", "Harbor", "Quartz", "Falcon",
    "Meridian", "Sterling", "Granite", "Evergreen", "Pioneer", "Vantage", "Keystone", "Apex",
]
COMPANY_SUFFIXES = [
    "Systems", "Ventures", "Labs", "Group", "Partners", "Inc.", "Ltd", "LLC", "GmbH", "S.A.",
    "K.K.", "AG", "Holdings", "Technologies", "Solutions", "Consulting", "& Co.", "& Sons",
    "Analytics", "Software", "Networks", "Logistics", "Capital", "Media", "Health", "Foods",
    "Retail", "Energy", "Robotics", "Security", "Pty Ltd", "S.r.l.", "B.V.", "Oy", "AB", "SAS",
]
NAMED_COMPANIES = [
    "AT&T", "Procter & Gamble", "Ben & Jerry's", "L'Oréal", "E*TRADE", "Yahoo!", "Toys\"R\"Us",
    "Barnes & Noble", "Johnson & Johnson", "Marks & Spencer", "H&M", "3M", "7-Eleven",
    "Macy's", "McDonald's", "Land O'Lakes", "Dunkin'", "Moët Hennessy", "Nestlé", "Société Générale",
    "Ernst & Young", "PwC (PricewaterhouseCoopers)", "Arm & Hammer", "Crate&Barrel", "A&W",
    "O'Reilly Media", "Smith & Wesson", "Tiffany & Co.", "Saks Fifth Avenue", "Dr. Oetker",
    "Kraft-Heinz", "Coca-Cola", "Rolls-Royce", "Hewlett-Packard", "Mercedes-Benz", "Anheuser-Busch",
    "Bristol-Myers Squibb", "Sotheby's", "Lowe's", "Kellogg's", "Wendy's", "Trader Joe's",
    "Zürich Versicherung", "Škoda Auto", "Ålands Bank", "Øresund Logistics", "İş Bankası",
    "株式会社トヨタ", "华为技术", "Газпром", "삼성전자", "Tata Consultancy Services",
    "Infosys (Bengaluru)", "Grupo Bimbo, S.A.B. de C.V.", "Banco do Brasil S/A", "Café Britt",
]
FIRST_NAMES = [
    "Aisha", "José", "Zoë", "Jean-Luc", "Siobhán", "Mary-Kate", "Øystein", "Ðorđe", "Łukasz",
    "Ana Sofía", "D'Andre", "Nguyễn", "Björn", "François", "Hélène", "Jürgen", "Małgorzata",
    "Ngozi", "Oluwaseun", "Priya", "Rajesh", "Sven", "Tomás", "Yusuf", "Zeynep", "Chloé", "Dmitri",
    "Ekaterina", "Fatima", "Giuseppe", "Hiroshi", "Ingrid", "Jae-won", "Kwame", "Leilani", "Mateo",
    "Noor", "Olga", "Pedro", "Quinn", "Renée", "Søren", "Thảo", "Ulrike", "Valentina", "Wei",
    "Ximena", "Yara", "Zainab", "Ömer", "Çağla", "Şebnem", "Ægir", "Ruairí", "Oisín",
]
LAST_NAMES = [
    "O'Brien", "O'Neil-Smith", "D'Angelo", "Müller-Lüdenscheidt", "Núñez", "van der Berg",
    "de la Cruz", "McDonald", "Al-Farsi", "Ben-David", "Nguyễn", "Łukasiewicz", "Øvergård",
    "Select", "Union", "Drop", "Script", "Alert", "Delete", "Exec", "Case", "Null", "Root",
    "Smith & Sons", "St. John", "Fitz-Simmons", "Ó Súilleabháin", "Ng", "Li", "Żółć", "Ибрагимов",
    "王", "佐藤", "Kowalski", "Papadopoulos", "Gonçalves", "Ferrández", "Kjærgaard", "Håkansson",
    "Fernández-García", "Mbeki", "Okonkwo", "Rosenberg", "Schäfer", "Castillo", "Park", "Kim",
]
TITLES = [
    "Database Administrator (SQL Server)", "Union Organizer", "Scripting Lead", "Head of R&D",
    "Co-Founder & CTO", "VP, Sales (EMEA)", "Director - IT/Security", "Drop-in Coordinator",
    "C++ Developer", "C# / .NET Engineer", "Node.js Engineer", "DevOps — AWS/GCP", "JavaScript Engineer",
    "Sr. Mgr., Channel Sales; APAC", "Select Account Executive", "Executive Assistant to the CEO",
    "Shell Scripting Trainer", "Alert Response Analyst", "Order Management Lead", "Group Head, Data",
    "Table Games Manager", "Insert Molding Engineer", "Update & Release Manager", "Delete Requests Officer (GDPR)",
    "Systems Admin / Root Cause Analyst", "Prompt Engineer", "Java/Kotlin Architect", "Python & R Data Scientist",
    "Head of Growth (B2B, SMB < 50 seats)", "Benchmarking Analyst", "Wait Staff Supervisor",
    "Cookie Compliance Officer", "Frame Designer", "Style & Brand Director", "Expression Editor",
    "Error Budget Owner (SRE)", "Print Production Lead", "Import/Export Specialist", "Exit Interviewer",
    "Process Improvement Mgr.", "Command Center Operator", "Console Game Producer",
    "Kernel Engineer (Linux)", "Batch Processing Lead", "Query Optimization Specialist",
    "Schema Designer", "Trigger Point Therapist", "Grant Writer", "Merge & Acquisitions Counsel",
    "Case Manager", "Begin-to-End Delivery Lead", "Object Storage PM", "Form Builder PM",
    "Button Designer", "Action Sports Buyer", "Source Control Admin (Git/SVN)", "Target Sales Rep",
    "Link Building Specialist", "Anchor, Evening News", "Path Planning Engineer", "Home Office Manager",
    "Password Reset Desk", "Token Economist", "Session Musician & A/R", "Chief of Staff",
    "SVP Ops/Finance", "Responsable Comercial (España)", "Geschäftsführer", "Directeur Général Délégué",
    "営業部長", "销售总监", "Руководитель отдела продаж", "Head of Partnerships: UK & I",
]
NOTES = [
    "Budget >= $50k; timeline < 3 months",
    "If budget > 100k or team > 50 then enterprise tier",
    "Met at SaaStr; wants demo 1/15 -- follow up",
    "Said 'no' to pricing; try again in Q3",
    "Uses MySQL, Postgres & Oracle; will select a vendor by EOQ",
    "Call back @ 3pm (EST) re: order #12345",
    "Path: C:\\Program Files\\Acme? no -- they run macOS",
    "50% off; 'best & final' offer <- their words",
    "Asked whether we support `select * from leads` exports; said CSV is fine",
    "Wants union of both lists (East + West) before the drop on 3/1",
    "Their admin said: \"delete the old records, then update the rest\"",
    "Ping me when legal signs; exec sponsor = CFO",
    "Shell Oil account -- not the Unix shell! ;)",
    "Loves the alert() popups in their old CRM (not really)",
    "cat food brand, 2 sites; echo chamber on LinkedIn",
    "Sleep study clinic, wait list ~ 6 weeks; benchmark vs. competitor",
    "1=1 meeting scheduled -> 1:1 with VP",
    "Price/seat: $12.50 * 40 seats = $500/mo",
    "Where: Berlin; when: Tuesday; who: Jürgen & team",
    "Script for cold call: 'Hi, this is ...'; objection -> timing",
    "Drop-off after trial day 7; re-engage w/ case study",
    "Order of ops: pilot -> rollout -> renewal (2025-2026)",
    "Null response to 3 emails; try phone +1 (555) 010-0199",
    "Contact form said: <b>urgent</b> -- they use <i>italics</i> a lot",
    "Mentioned /etc/hosts issue on their VPN; IT ticket #4411",
    "Uses ../shared drive for proposals (their words)",
    "OR-Tools for routing and AND gates in hardware team",
    "Group buying: 3 divisions | 1 contract | 5-year term",
    "Needs SSO (SAML/OIDC) & SCIM; no passwords in email pls",
    "Exec summary sent 12/02; waiting on 'go/no-go'",
    "Having issues with their current vendor's (slow) support",
    "Between 20 and 30 seats; exists in HubSpot already",
    "Cast of thousands: 12 stakeholders; begin with IT",
    "Case #88 -- else escalate to account manager; end of story",
    "Kill switch needed for campaign sends (compliance)",
    "Process: RFP -> shortlist -> POC -> contract; we're at step 2/4",
    "Grant-funded; fiscal year ends 6/30 & they must spend by then",
    "Truncated email signature; LinkedIn says 'VP Growth @ Initech'",
    "Limit 10 users on free plan; offset by annual pre-pay?",
    "$$$ -- high intent; said 'yes, yes, yes!'",
    "Notes: a < b && c > d was their Excel formula question",
    "Wants 2FA; asked about \"password\" rotation every 90 days",
    "Sent deck v3 (final_FINAL).pdf; next: security questionnaire",
    "Hates drag-and-drop; prefers CSV imports; 10,000+ rows",
    "Heard about us via Reddit /r/sales thread",
    "Runs `npm install` in CI; DevOps team of 4 -- Node & Go",
    "¿Podemos agendar una demo el martes? — dice que sí",
    "Rückruf am Montag; Budget ca. 20.000 € netto",
    "Rendez-vous à 14h; l'équipe veut une démo « complète »",
    "来週デモ希望、予算は未定",
    "Перезвонить в четверг; бюджет согласован",
    "Question: does 'or' in search mean OR? e.g. acme or globex",
    "Compare plans: Pro (<=25 users) vs Enterprise (>25 users)",
    "Eval period 14 days; convert if >= 3 teams active",
    "System of record is Salesforce; sync nightly at 02:00",
    "Admin user is root@their-domain (lol); changed it",
    "Document signed via DocuSign; window for changes closes Fri",
    "Location: São Paulo / Ciudad de México / Montréal",
    "Cookie banner complaint on their site; not our issue",
    "Their cron runs /usr/local/bin/backup.sh nightly at 02:00",
    "IT ran ping 8.8.8.8 -c 4 from the office: 40 ms average",
    "Admin shared: cat /var/log/app.log | grep ERROR (lots of timeouts)",
    "They call curl -s https://api.example.com/v2/leads from a script",
    "Windows desktops; IT edits C:\\Windows\\System32\\drivers\\etc\\hosts by hand",
    "DBA says: SELECT name FROM users WHERE active = 1; takes 9 s on their side",
    "Pen-test report mentioned /etc/passwd readable on an old box (fixed since)",
    "Mac users run sudo softwareupdate -ia; Windows users run winget upgrade --all",
    "Deploys with ssh deploy@10.0.0.5 then sudo systemctl restart app",
    "Uses PowerShell: Get-ChildItem -Recurse | Remove-Item for cleanups",
    "Their team types ls -la /opt/app to check releases",
    "Ops lead pasted: docker compose up -d && docker ps",
    "Backups via rsync -avz /srv/data backup01:/mnt/vault",
    "Says `DROP TABLE` scares them; wants read-only exports",
    "Their Excel macro: =IF(A1>100; \"big\"; \"small\") -- works fine",
    "Old CRM export was C:\\exports\\crm_2019.csv (Windows-1252)",
]
SEARCH_TERMS = [
    "acme or globex", "\"vp sales\" -intern", "o'brien", "select", "union organizer", "exec systems",
    "script ventures", "r&d", "c++", "node.js", "at&t", "l'oréal", "drop-in", "delete requests",
    "shell", "root cause", "alert response", "sleep study", "benchmark", "order management",
    "müller", "são paulo", "zürich", "1:1", ">= 50 employees", "cto & co-founder", "e*trade",
    "yahoo!", "head of r&d", "\"director - it/security\"", "-churned", "case manager", "null",
    "true north", "where to buy", "join us", "wait list", "table games", "print production",
]
TAGS = [
    "q4-pipeline", "hot", "enterprise", "smb", "partner", "churn-risk", "renewal", "select-tier",
    "union-deal", "exec-sponsor", "drop-off", "alert", "script-a", "shell", "r&d", "c-level",
    "emea", "apac", "latam", "na", "vip", "do-not-call", "follow-up", "webinar",
]
CAMPAIGN_HTML = [
    "<p>Hi {{first_name}},</p><p>Your <b>exec summary</b> is ready. <a href=\"https://example.com/report?id={{id}}\">Read it</a>.</p>",
    "<h1>Union of ideas</h1><p>Select the plan that fits: <i>Pro</i> or <i>Enterprise</i>.</p><img src=\"https://cdn.example.com/logo.png\" alt=\"Logo\">",
    "<table><tr><td>Drop by our booth #42</td></tr><tr><td>Order by 12/31 &amp; save 20%</td></tr></table>",
    "<p style=\"color:#333\">Script for success: 3 steps &rarr; <a href=\"https://example.com/guide\">guide</a></p>",
    "<div class=\"footer\">Unsubscribe: <a href=\"{{unsubscribe_url}}\">here</a> &middot; Acme Inc., 1 Main St.</div>",
]
CSV_HEADERS = [
    ["First Name", "Last Name", "Email", "Job Title", "Company Name", "Lead Source", "Notes"],
    ["first_name", "last_name", "email", "title", "company", "source", "notes"],
    ["Contact First Name", "Contact Last Name", "Email Address", "Title", "Account Name", "Lead Source", "Description"],
]
SOURCES = ["Webinar", "Trade show", "LinkedIn", "Referral", "Inbound", "Cold call", "Partner (ISV)"]


def split(values, part):
    """The dev (part 0) or validation (part 1) half of a list, by position."""
    return values[part::2]


def company(rng, v):
    if rng.random() < 0.3:
        return rng.choice(v["named"])
    return f"{rng.choice(v['words'])} {rng.choice(v['suffixes'])}"


def email(first, last, rng):
    local = "".join(ch for ch in f"{first}.{last}".lower() if ch.isalnum() or ch == ".")
    return f"{local or 'lead'}+{rng.randint(1, 999)}@example.com"


def lead(rng, v):
    first, last = rng.choice(v["first"]), rng.choice(v["last"])
    body = {
        "first_name": first,
        "last_name": last,
        "company_name": company(rng, v),
        "title": rng.choice(v["titles"]),
        "email": email(first, last, rng),
        "notes": rng.choice(v["notes"]),
        "tags": rng.sample(v["tags"], k=2),
        "source": rng.choice(SOURCES),
    }
    if rng.random() < 0.3:
        body["custom"] = {"budget_note": rng.choice(v["notes"]), "region": "EMEA / APAC"}
    return body


def requests(part, n, seed):
    rng = random.Random(seed)
    v = {
        "words": split(COMPANY_WORDS, part),
        "suffixes": split(COMPANY_SUFFIXES, part),
        "named": split(NAMED_COMPANIES, part),
        "first": split(FIRST_NAMES, part),
        "last": split(LAST_NAMES, part),
        "titles": split(TITLES, part),
        "notes": split(NOTES, part),
        "search": split(SEARCH_TERMS, part),
        "tags": split(TAGS, part),
        "html": split(CAMPAIGN_HTML, part) or CAMPAIGN_HTML,
    }
    out = []
    for i in range(n):
        kind = rng.choices(["create", "update", "search", "import", "campaign"], [40, 15, 25, 12, 8])[0]
        if kind == "create":
            out.append({"method": "POST", "uri": "/api/v1/leads", "content_type": "application/json",
                        "body": json.dumps(lead(rng, v), ensure_ascii=False)})
        elif kind == "update":
            field = rng.choice(["title", "notes", "company_name", "last_name"])
            value = {"title": v["titles"], "notes": v["notes"], "company_name": [company(rng, v)],
                     "last_name": v["last"]}[field]
            lead_id = "%032x" % rng.getrandbits(128)
            out.append({"method": "PATCH", "uri": f"/api/v1/leads/{lead_id[:8]}-{lead_id[8:12]}-{lead_id[12:16]}-{lead_id[16:20]}-{lead_id[20:]}",
                        "content_type": "application/json",
                        "body": json.dumps({field: rng.choice(value)}, ensure_ascii=False)})
        elif kind == "search":
            params = {"q": rng.choice(v["search"])}
            if rng.random() < 0.4:
                params["country"] = rng.choice(["DE", "FR,ES", "US", "BR"])
            if rng.random() < 0.3:
                params["sort"] = rng.choice(["-score", "created"])
            out.append({"method": "GET", "uri": "/api/v1/leads?" + urllib.parse.urlencode(params),
                        "content_type": None, "body": None})
        elif kind == "import":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")
            w.writerow(rng.choice(CSV_HEADERS))
            for _ in range(rng.randint(3, 12)):
                l = lead(rng, v)
                w.writerow([l["first_name"], l["last_name"], l["email"], l["title"], l["company_name"],
                            l["source"], l["notes"]])
            out.append({"method": "POST", "uri": "/api/v1/imports", "content_type": "text/csv",
                        "body": buf.getvalue()})
        else:
            out.append({"method": "POST", "uri": "/api/v1/campaigns", "content_type": "application/json",
                        "body": json.dumps({"name": f"{company(rng, v)} nurture", "subject": rng.choice(v["titles"]),
                                            "html": rng.choice(v["html"])}, ensure_ascii=False)})
    for i, r in enumerate(out):
        r["id"] = f"grown-{'dev' if part == 0 else 'val'}-{i}"
        r["hard"] = True
    return out


def write(name, rows):
    with open(HERE / name, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write("b2b-grown-dev.jsonl", requests(0, 1500, 20261202))
    write("b2b-grown-validation.jsonl", requests(1, 1500, 20261203))
